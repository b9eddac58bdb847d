"""Safe YAML loading that keeps where every value was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.flows.source import Position, SourceError, load_source

FLOW = """\
id: main
nodes:
  start:
    type: menu
    options:
      - digit: 1
        goto: sales
"""


def test_positions_of_values_and_keys() -> None:
    """Each value and key maps to its 1-based line and column."""
    source = load_source("dialplans/main.yaml", FLOW)
    assert source.data["nodes"]["start"]["options"][0]["goto"] == "sales"
    assert source.where(("nodes", "start", "options", 0, "goto")) == Position(7, 15)
    assert source.where(("nodes", "start"), key=True) == Position(3, 3)
    assert source.where(("nodes", "start", "nope")) == Position(4, 5)


def test_duplicate_key_is_an_error() -> None:
    """YAML would keep the last of two equal keys silently; we point at the second."""
    with pytest.raises(SourceError, match=r"^f.yaml:3:1: duplicate key 'id' \(first at line 1\)"):
        load_source("f.yaml", "id: a\nversion: 1\nid: b\n")


def test_syntax_error_points_at_the_line() -> None:
    with pytest.raises(SourceError, match=r"^f.yaml:3:6: YAML syntax: mapping values"):
        load_source("f.yaml", "id: a\nnodes: x\n  bad: indent\n")


def test_python_tags_are_refused() -> None:
    """Only safe YAML: a !!python tag is an error, never an object."""
    with pytest.raises(SourceError, match=r"f\.yaml:1:5: tag '[^']*python/object/apply"):
        load_source("f.yaml", "id: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(SourceError, match="YAML syntax"):
        load_source("f.yaml", "id: !!python/name:os.system\n")


def test_merge_keys_and_empty_files_are_refused() -> None:
    with pytest.raises(SourceError, match="merge keys"):
        load_source("f.yaml", "a: &x {b: 1}\nc:\n  <<: *x\n")
    with pytest.raises(SourceError, match="empty"):
        load_source("f.yaml", "")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"missing.yaml:1:1: cannot read it"):
        load_source(tmp_path / "missing.yaml")


def test_a_tab_gets_the_hint_to_use_spaces() -> None:
    """YAML cannot indent with tabs: the error says so, at the tab."""
    with pytest.raises(SourceError) as info:
        load_source("x.yaml", "id: a\nnodes:\n\tb: {type: hangup}\n")
    assert str(info.value).startswith("x.yaml:3:1:")
    assert "not tabs: replace the tab with spaces" in str(info.value)
