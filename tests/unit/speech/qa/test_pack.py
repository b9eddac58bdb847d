"""Rule packs: YAML in, a frozen model out, every problem as file:line:col with what is allowed."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from speech.qa import RulePackError, load_pack
from speech.qa.rules import SCHEMA_FILE, MustNotSay, MustSay, Near, TalkOver, json_schema
from speech.qa.schema import main as schema_main

ISSUE_EXAMPLE = """\
language: ko
rules:
  - {id: no-cancel-push, must_not_say: ["해지"], speaker: agent}
  - {id: closing, must_say: ["감사합니다"], speaker: agent, window: {last: 30}}
"""

FULL = """\
language: ko
name: 콜센터 기본
defaults: {threshold: 0.75, min_confidence: 0.4}
rules:
  - {id: greeting, must_say: 안녕하세요, match: fuzzy, threshold: 0.7, window: {first: 15}}
  - {id: account, must_say: "계좌 번호 [num]", match: pattern, speaker: agent, weight: 2}
  - id: penalty
    must_not_say:
      - {near: [해지, 위약금], within: 3}
  - id: disclosure
    speaker: agent
    all_of:
      - {must_say: 녹음}
      - any_of: [{must_say: 동의}, {must_say: 괜찮으세요}]
  - {id: dead-air, silence: {over: 10}}
  - {id: interrupt, talk_over: {over: 2}, speaker: agent}
  - {id: ratio, talk_ratio: {min: 0.3, max: 0.7}}
  - {id: pace, speaking_rate: {max: 7}, speaker: agent}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RulePackError) as caught:
        load_pack("pack.yaml", text)
    return str(caught.value).splitlines()


class TestLoad:
    def test_the_issue_example_loads(self) -> None:
        """The form the issue asks for works as written."""
        pack = load_pack("ko.yaml", ISSUE_EXAMPLE)
        first, second = pack.rules
        assert isinstance(first, MustNotSay)
        assert (first.id, first.phrases, first.speaker) == ("no-cancel-push", ("해지",), "agent")
        assert isinstance(second, MustSay)
        assert second.window is not None
        assert second.window.bounds(100.0) == (70.0, 100.0)

    def test_every_kind_loads(self) -> None:
        """Each kind of rule, groups and defaults load into their classes."""
        pack = load_pack("full.yaml", FULL)
        assert pack.defaults.threshold == 0.75
        assert [rule.id for rule in pack.rules] == [
            "greeting",
            "account",
            "penalty",
            "disclosure",
            "dead-air",
            "interrupt",
            "ratio",
            "pace",
        ]
        penalty = pack.rules[2]
        assert isinstance(penalty, MustNotSay)
        assert penalty.phrases == (Near(near=("해지", "위약금"), within=3),)
        assert isinstance(pack.rules[5], TalkOver)
        assert len(list(pack.walk())) == 12

    def test_a_file_is_read_from_disk(self, tmp_path: Any) -> None:
        """load_pack reads a path; errors name it."""
        path = tmp_path / "ko.yaml"
        path.write_text(ISSUE_EXAMPLE.replace("speaker: agent}", "speaker: agnet}", 1))
        with pytest.raises(RulePackError) as caught:
            load_pack(path)
        assert caught.value.file == str(path)
        assert (caught.value.line, caught.value.column) == (3, 57)


class TestErrors:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "language: ko\nrules:\n  - {id: a, must_say: 5}\n",
                "pack.yaml:3:23: must_say: 5 is not a phrase; give text",
            ),
            (
                "language: ko\nrules:\n  - {id: a, must_say: x, silence: {over: 3}}\n",
                "pack.yaml:3:26: a rule has one kind, this one has must_say and silence",
            ),
            (
                "language: ko\nrules:\n  - {id: a, must_say: x, windw: {last: 3}}\n",
                "pack.yaml:3:26: unknown key 'windw'; allowed: id, description, weight, speaker, "
                "window,",
            ),
            (
                "language: ko\nrules:\n  - {id: a, must_say: x}\n  - {id: a, must_say: y}\n",
                "pack.yaml:4:10: duplicate rule id 'a'",
            ),
            ("language: ko\nrules:\n  - {must_say: x}\n", "pack.yaml:3:5: this rule has no id"),
            (
                "language: ko\nrules:\n  - {id: a, must_say: x, speaker: bob}\n",
                "pack.yaml:3:35: speaker: 'bob' is not a speaker; allowed: agent, caller, any",
            ),
            (
                "language: ko\nrules:\n  - {id: a, must_say: [x, '해지*']}\n",
                "pack.yaml:3:27: must_say: '*' is a pattern wildcard",
            ),
            (
                "language: ko\nrules:\n  - {id: a, must_say: x, window: {first: 1, last: 2}}\n",
                "pack.yaml:3:34: window: a window is {first: N} or {last: N}",
            ),
            (
                "language: ko\nrules:\n  - {id: a, must_say: x, match: exact, threshold: 0.5}\n",
                "pack.yaml:3:51: threshold: only for match: fuzzy",
            ),
            (
                "language: ko\nrules:\n  - {id: a, must_say: [{near: [x]}]}\n",
                "pack.yaml:3:31: near: give two phrases, [A, B]",
            ),
            (
                "language: ko\nrules:\n  - {id: a, must_say: [yes]}\n",
                "pack.yaml:3:24: must_say: YAML reads yes/no/on/off/true/false as a boolean",
            ),
            (
                "language: ko\nrules:\n  - {id: a, foo: 1}\n",
                "pack.yaml:3:5: a rule needs exactly one of: must_say, must_not_say, all_of",
            ),
            ("language: ko\nrules:\n  - {id: a, must_say: [x}\n", "pack.yaml:3:25: YAML syntax"),
            ("language: ko\nrules: []\n", "pack.yaml:2:8: rules: List should have at least 1"),
            ("rules: [{id: a, must_say: x}]\n", "pack.yaml:1:1: missing 'language'"),
            ("", "pack.yaml:1:1: the file is empty"),
            ("- a\n", "pack.yaml:1:1: a rule pack is a mapping"),
            ("language: ko\nlanguage: en\n", "pack.yaml:2:1: duplicate key 'language'"),
            ("language: !!python/name:os.system ko\n", "pack.yaml:1:11: YAML syntax"),
            ("a: &x [1]\nb: !!set {x}\n", "pack.yaml:2:4: tag 'tag:yaml.org,2002:set'"),
        ],
    )
    def test_problem_is_reported_at_its_line(self, text: str, expected: str) -> None:
        """Each mistake is reported once, at the line and column it was written."""
        found = problems(text)
        assert any(line.startswith(expected) for line in found), found

    def test_every_problem_is_reported(self) -> None:
        """Several mistakes give one line each, in file order."""
        text = (
            "language: ko\nrules:\n  - {id: a, must_say: x, speaker: bob}\n"
            "  - {id: b, silence: {over: -1}}\n"
        )
        found = problems(text)
        assert [line.split(":")[1] for line in found] == ["3", "4"]


class TestSchema:
    def test_the_schema_file_is_current(self) -> None:
        """rules.schema.json is what the model exports (python -m speech.qa.schema)."""
        assert json.loads(SCHEMA_FILE.read_text()) == json_schema()

    def test_the_schema_is_written_where_asked(self, tmp_path: Any) -> None:
        """python -m speech.qa.schema FILE writes the schema to FILE."""
        target = tmp_path / "rules.schema.json"
        assert schema_main([str(target)]) == 0
        assert json.loads(target.read_text()) == json_schema()

    @pytest.mark.parametrize("text", [ISSUE_EXAMPLE, FULL])
    def test_valid_packs_pass_the_schema(self, text: str) -> None:
        """An editor with the schema accepts what the loader accepts."""
        jsonschema.validate(yaml.safe_load(text), json_schema())

    def test_the_schema_refuses_two_kinds(self) -> None:
        """The schema, like the loader, refuses a rule with two kinds."""
        bad = {"language": "ko", "rules": [{"id": "a", "must_say": "x", "silence": {"over": 1}}]}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, json_schema())


KEYS = st.sampled_from(
    [
        "id",
        "must_say",
        "must_not_say",
        "speaker",
        "window",
        "match",
        "threshold",
        "weight",
        "silence",
        "talk_over",
        "all_of",
        "near",
        "within",
        "first",
        "last",
        "over",
        "min",
        "max",
    ]
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 100),
    st.floats(-1, 2, allow_nan=False),
    st.sampled_from(["해지", "agent", "fuzzy", "x*", "[num]", "[foo]", ""]),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


class TestNeverCrashes:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.dictionaries(KEYS, VALUES, max_size=5), min_size=1, max_size=3))
    def test_any_yaml_loads_or_says_where(self, rules: list[dict[str, Any]]) -> None:
        """Whatever the rules hold, the loader returns a pack or a file:line:col error."""
        text = yaml.safe_dump({"language": "ko", "rules": rules}, allow_unicode=True)
        try:
            load_pack("fuzz.yaml", text)
        except RulePackError as error:
            for line in str(error).splitlines():
                assert re.match(r"^fuzz\.yaml:\d+:\d+: \S", line), line
