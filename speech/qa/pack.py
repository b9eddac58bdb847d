"""Loading rule packs: YAML with positions -> :class:`RulePack`, errors as ``file:line:col``.

Every problem pydantic finds is reported at the line it is about, with what
is allowed there (the keys a kind of rule takes, the kinds a rule can be).
A value that fits no member of a choice (a phrase given as a number) gives
one message, not one per member.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from speech.qa.errors import Problem, RulePackError
from speech.qa.rules import (
    KINDS,
    MODELS,
    Bounds,
    Defaults,
    Near,
    RatioBounds,
    RulePack,
    SilenceSpec,
    TalkOverSpec,
    Window,
    kind_of,
)
from speech.qa.source import Located, PathKey, load_yaml

__all__ = ["load_pack", "parse_pack"]

_RULE_LISTS: Final = frozenset({"rules", "all_of", "any_of"})
_NESTED: Final[dict[str, type[BaseModel]]] = {
    "window": Window,
    "defaults": Defaults,
    "silence": SilenceSpec,
    "talk_over": TalkOverSpec,
    "talk_ratio": RatioBounds,
    "speaking_rate": Bounds,
}
_TYPES: Final = {"str": str, "Near": dict}


def load_pack(path: Path | str, text: str | None = None) -> RulePack:
    """Read and validate a rule pack; raises RulePackError (every problem, with its line)."""
    return parse_pack(load_yaml(path, text))


def parse_pack(located: Located) -> RulePack:
    """Validate loaded YAML into a :class:`RulePack`."""
    if not isinstance(located.data, dict):
        raise RulePackError.of(
            [located.problem((), "a rule pack is a mapping with `language:` and `rules:`")]
        )
    try:
        return RulePack.model_validate(located.data)
    except ValidationError as error:
        problems = _problems(located, error)
    raise RulePackError.of(problems)


def _problems(located: Located, error: ValidationError) -> list[Problem]:
    kept: dict[PathKey, list[Any]] = {}
    unfit: dict[PathKey, Any] = {}
    for item in error.errors():
        path, fits, model = _walk(located.data, tuple(item["loc"]))
        if fits:
            kept.setdefault(path, []).append((item, model))
        else:
            unfit.setdefault(path, item)
    problems = []
    known = [*kept, *unfit]
    for path, item in unfit.items():
        # Report the deepest place where no member of a choice fits the value.
        if not any(len(other) > len(path) and other[: len(path)] == path for other in known):
            problems.append(_mismatch(located, path, item.get("input")))
    for path, items in kept.items():
        problems += [_describe(located, path, item, model) for item, model in items]
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line, p.column))


def _walk(data: Any, loc: tuple[Any, ...]) -> tuple[PathKey, bool, type[BaseModel] | None]:
    """Map an error's location to the YAML path; whether the union members it went
    through fit the data; and the model that holds the last key."""
    path: list[str | int] = []
    value: Any = data
    model: type[BaseModel] | None = RulePack
    fits = True
    in_rules = False
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if isinstance(part, str) and part.startswith("list["):
            fits = fits and isinstance(value, list)
            continue
        if part in _TYPES:
            fits = fits and isinstance(value, _TYPES[part])
            if part == "Near":
                model = Near
            continue
        if isinstance(part, int):
            path.append(part)
            value = value[part] if isinstance(value, list) and part < len(value) else None
            if in_rules:
                kind = kind_of(value)
                model = MODELS[kind] if kind is not None else None
                if parts and parts[0] == kind:
                    parts.pop(0)  # pydantic puts the union's tag in the location
            in_rules = False
            continue
        path.append(part)
        value = value.get(part) if isinstance(value, dict) else None
        in_rules = part in _RULE_LISTS
        if parts and not isinstance(parts[0], int) and part in _NESTED:
            model = _NESTED[part]
    return tuple(path), fits, model


def _allowed(model: type[BaseModel] | None) -> str:
    if model is None:
        return ""
    return "; allowed: " + ", ".join(model.model_fields)


def _mismatch(located: Located, path: PathKey, found: Any) -> Problem:
    name = next((p for p in reversed(path) if isinstance(p, str)), "rule")
    shown = repr(found)[:40]
    if isinstance(found, bool):
        return located.problem(
            path,
            f"{name}: YAML reads yes/no/on/off/true/false as a boolean, not text; "
            "put the word in quotes",
        )
    if name in ("must_say", "must_not_say"):
        message = (
            f"{name}: {shown} is not a phrase; give text (quoted if it looks like a number), "
            "a list of phrases, or {near: [A, B], within: N} in the list"
        )
    else:
        message = f"{name}: {shown} is not an allowed value"
    return located.problem(path, message)


def _describe(located: Located, path: PathKey, item: Any, model: type[BaseModel] | None) -> Problem:  # noqa: PLR0911 -- one return per kind of error
    kind = item["type"]
    name = next((p for p in reversed(path) if isinstance(p, str)), "rule")
    message = str(item["msg"]).removeprefix("Value error, ")
    if kind == "qa_at":  # a check of a whole rule or pack that knows the key it is about
        where = (*path, *item["ctx"]["path"])
        named = next((p for p in reversed(where) if isinstance(p, str) and p != "near"), "")
        prefix = f"{named}: " if named and named not in ("rules", "id") else ""
        return located.problem(where, prefix + message)
    if kind == "qa_kind":
        rule = _dig(located.data, path)
        found = [k for k in KINDS if isinstance(rule, dict) and k in rule]
        if len(found) > 1:
            return located.problem(
                (*path, found[1]),
                f"a rule has one kind, this one has {' and '.join(found)}; split it into two "
                "rules, or group them with all_of / any_of",
                key=True,
            )
        if not isinstance(rule, dict):
            return located.problem(path, "a rule is a mapping like {id: ..., must_say: [...]}")
        return located.problem(path, f"{message} (and id, speaker, window, weight)")
    if kind == "extra_forbidden":
        return located.problem(path, f"unknown key {path[-1]!r}{_allowed(model)}", key=True)
    if kind == "missing" and "near" in path:
        return located.problem(path[:-1], "near: give two phrases, [A, B]")
    if kind == "missing":
        field = model.model_fields.get(str(path[-1])) if model is not None else None
        hint = f": {field.description}" if field is not None and field.description else ""
        return located.problem(path[:-1], f"missing {path[-1]!r}{hint}")
    if kind == "string_type" and isinstance(item.get("input"), bool):
        word = "yes/on/true" if item["input"] else "no/off/false"
        message = f"YAML reads {word} as a boolean, not text; put the word in quotes"
    if kind == "string_pattern_mismatch" and name == "id":
        message = (
            "an id is letters, digits, '-', '_' and '.' (at most 64), "
            "starting with a letter or a digit"
        )
    if kind == "literal_error" and name == "speaker":
        message = f"{item.get('input')!r} is not a speaker; allowed: agent, caller, any"
    return located.problem(path, f"{name}: {message}")


def _dig(data: Any, path: PathKey) -> Any:
    for part in path:
        if isinstance(part, int):
            data = data[part] if isinstance(data, list) and part < len(data) else None
        else:
            data = data.get(part) if isinstance(data, dict) else None
    return data
