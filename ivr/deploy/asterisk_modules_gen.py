"""Generate ``ivr/deploy/asterisk_modules.json`` from a git mirror of Asterisk's sources.

Run ``python -m ivr.deploy.asterisk_modules_gen --git-dir PATH [--ref 22.9.0]``
against a (bare) clone of github.com/asterisk/asterisk. For every loadable
module (``<dir>/<name>.c`` in apps, bridges, cdr, cel, channels, codecs,
formats, funcs, pbx, res and addons, plus the sources its directory's Makefile
adds with ``MOD_ADD_C``) it reads the ``AST_MODULE_INFO(...)`` block
(``.requires``, ``.optional_modules``, ``.enhances``, ``.load_pri``,
``.support_level``; a field inside ``#ifdef X`` is kept with its condition),
the dialplan applications it registers (``ast_register_application_xml(app,
...)`` and friends, the name resolved from ``static const char app[] =
"Dial";``, ``#define`` or a ``{ "Name", func }`` table), the dialplan functions
(``struct ast_custom_function x = { .name = "CHANNEL", ... }`` registered with
``ast_custom_function_register*``), the file extensions of its formats
(``struct ast_format_def``), the codec pairs of its translators and its AMI
side: the actions it registers (``ami_actions``: ``ast_manager_register_xml("Name",
...)``, ``ast_manager_register_xml_core``, ``ast_manager_register2``, the name
resolved as for applications), the events it raises by name (``ami_events``:
``manager_event``, ``ast_manager_event_blob_create``, ``ast_manager_publish_event``
..., and those its documentation defines, ``<managerEvent name="...">``) and
the events that reach the manager only because it forwards their topic there
(``ami_forwards``: ``stasis_forward_all(ast_device_state_topic_all(),
ast_manager_get_topic())`` in res_manager_devicestate; the events are those the
``.to_ami`` callbacks of the message types of the file defining the topic create,
``DeviceStateChange`` in main/devicestate.c). The modules built into the
``asterisk`` binary (``main/Makefile``'s ``MOD_SRC``: cdr, cel, ccss,
``extconfig``, acl, ...) are listed with ``builtin: true``;
what the rest of ``main/`` registers is under ``core``. Module names are what
the loader matches ``.requires`` against: a loadable module's ``.so`` file
stem, a built-in one's ``AST_MODULE`` (``main/loader.c``: ``find_resource``,
``ast_module_register``). Names that cannot be resolved statically (functions
``func_odbc`` makes from its configuration; at 22.9.0 also the events of two
forwarded topics whose file has no ``.to_ami``: app_queue's
``ast_queue_topic_all`` carries app_queue's own message types, and the core's
``ast_mwi_topic_all``) are listed under ``unresolved``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["generate", "main"]

MODULE_DIRS = (
    "addons",
    "apps",
    "bridges",
    "cdr",
    "cel",
    "channels",
    "codecs",
    "formats",
    "funcs",
    "pbx",
    "res",
)

#: Where the registration functions themselves are defined: nothing registered.
_REGISTRY_API = frozenset({"main/pbx_app.c", "main/pbx_functions.c"})

DEFAULT_OUT = Path(__file__).with_name("asterisk_modules.json")

_STRING = r'"(?:[^"\\\n]|\\.)*"'


@dataclass
class _Source:
    """The text of a module's files, comments removed (string literals kept)."""

    paths: list[str]
    raw: str
    code: str
    own: str  # ``code`` without the ``#define``s taken from headers
    docs: str = ""  # ``raw`` and the XML documentation files that go with the sources


@dataclass
class _Module:
    name: str
    source: str
    builtin: bool = False
    description: str | None = None
    support: str | None = None
    load_pri: str | None = None
    defaultenabled: bool = True
    requires: list[str] = field(default_factory=list)
    optional: list[str] = field(default_factory=list)
    enhances: list[str] = field(default_factory=list)
    conditions: dict[str, str] = field(default_factory=dict)
    applications: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    file_extensions: list[str] = field(default_factory=list)
    translators: list[list[str]] = field(default_factory=list)
    sorcery_types: list[str] = field(default_factory=list)
    channel_types: list[str] = field(default_factory=list)
    config_files: list[str] = field(default_factory=list)
    ami_actions: list[str] = field(default_factory=list)
    ami_events: list[str] = field(default_factory=list)
    ami_forwards: list[str] = field(default_factory=list)
    variant_of: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        if self.builtin:
            out["builtin"] = True
        for key in ("description", "support", "load_pri", "variant_of"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if not self.defaultenabled:
            out["defaultenabled"] = False
        for key in (
            "requires",
            "optional",
            "enhances",
            "conditions",
            "applications",
            "functions",
            "file_extensions",
            "translators",
            "sorcery_types",
            "channel_types",
            "config_files",
            "ami_actions",
            "ami_events",
            "ami_forwards",
        ):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


class _Git:
    def __init__(self, git_dir: Path, ref: str) -> None:
        git = shutil.which("git")
        if git is None:
            raise SystemExit("asterisk_modules_gen: git is not installed; install it and rerun")
        self.git = git
        self.git_dir = git_dir
        self.ref = ref
        self.commit = self._run("rev-parse", f"{ref}^{{commit}}").strip()
        self.tree: dict[str, tuple[str, str]] = {}
        for line in self._run("ls-tree", "-r", "--full-tree", self.commit).splitlines():
            meta, _, path = line.partition("\t")
            mode, _kind, sha = meta.split()
            self.tree[path] = (mode, sha)
        self._cache: dict[str, str] = {}
        self._code: dict[str, str] = {}
        self._defines: dict[str, str] = {}

    def _run(self, *args: str) -> str:
        result = subprocess.run(  # noqa: S603 - git from PATH, fixed arguments
            [self.git, f"--git-dir={self.git_dir}", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(
                f"asterisk_modules_gen: git {' '.join(args)} failed in {self.git_dir}: "
                f"{result.stderr.strip()}; is --git-dir a clone of asterisk/asterisk "
                "holding --ref?"
            )
        return result.stdout

    def read(self, path: str) -> str:
        """The file's text at the commit, symbolic links followed."""
        if path not in self._cache:
            mode, sha = self.tree[path]
            text = self._run("cat-file", "blob", sha)
            if mode == "120000":  # a symlink: app_voicemail_imap.c -> app_voicemail.c
                target = str(PurePosixPath(path).parent / text.strip())
                text = self.read(target)
            self._cache[path] = text
        return self._cache[path]

    def read_link(self, path: str) -> str:
        """The target of a symbolic link, as stored."""
        return self._run("cat-file", "blob", self.tree[path][1]).strip()

    def code(self, path: str) -> str:
        """The file's text without comments."""
        if path not in self._code:
            self._code[path] = strip_comments(self.read(path))
        return self._code[path]

    def string_defines(self, path: str) -> str:
        """The file's ``#define NAME "string"`` lines."""
        if path not in self._defines:
            found = re.findall(r'^\s*#\s*define\s+\w+\s+".*$', self.code(path), re.M)
            self._defines[path] = "\n".join(found)
        return self._defines[path]

    def exists(self, path: str) -> bool:
        return path in self.tree


def strip_comments(text: str) -> str:
    """C text without ``/* */`` and ``//`` comments; strings and line breaks kept."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j) or " ")
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _strings(expr: str) -> str | None:
    """The value of adjacent C string literals (``"a," "b"``), or None."""
    parts = re.findall(_STRING, expr)
    if not parts or re.sub(_STRING, "", expr).strip():
        return None
    return "".join(_unescape(p[1:-1]) for p in parts)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def _unescape(body: str) -> str:
    """A C string literal's body with its backslash escapes replaced."""

    def one(m: re.Match[str]) -> str:
        seq = m.group(1)
        if seq[0] == "x":
            return chr(int(seq[1:], 16))
        if seq[0] in "01234567" and len(seq) > 1:
            return chr(int(seq, 8))
        return _ESCAPES.get(seq, seq)

    return re.sub(r"\\(x[0-9a-fA-F]+|[0-7]{1,3}|.)", one, body)


def _balanced(text: str, start: int, open_: str = "(", close: str = ")") -> str:
    """The text from ``start`` (an opening bracket) to its matching close, exclusive."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            m = re.compile(_STRING).match(text, i)
            i = m.end() if m else i + 1
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    return text[start + 1 :]


def _arguments(text: str) -> list[str]:
    """Top-level comma-separated arguments of a C call, strings and brackets respected."""
    args: list[str] = []
    depth, start, i = 0, 0, 0
    string = re.compile(_STRING)
    while i < len(text):
        c = text[i]
        if c == '"':
            m = string.match(text, i)
            i = m.end() if m else i + 1
            continue
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    args.append(text[start:].strip())
    return args


def _split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


_FIELD = re.compile(r"\.(requires|optional_modules|enhances|load_pri|support_level)\s*=\s*")
_CONDITION = re.compile(r"#\s*(ifdef|ifndef|if|elif|else|endif)\b(.*)")


def _track_condition(stack: list[str], line: str) -> bool:
    """Follow ``#ifdef``/``#else``/``#endif`` in ``stack``; True for such a line."""
    cond = _CONDITION.match(line.strip())
    if cond is None:
        return False
    word, rest = cond.group(1), cond.group(2).strip()
    if word in ("ifdef", "if"):
        stack.append(rest.replace("defined", "").strip("() "))
    elif word == "ifndef":
        stack.append("!" + rest)
    elif word == "else" and stack:
        stack[-1] = "!" + stack[-1]
    elif word == "elif" and stack:
        stack[-1] = rest
    elif word == "endif" and stack:
        stack.pop()
    return True


def _field(mod: _Module, key: str, value: str, stack: list[str]) -> None:
    """One ``.key = value`` of AST_MODULE_INFO, under the conditions in ``stack``."""
    if key == "load_pri":
        mod.load_pri = value
    elif key == "support_level":
        mod.support = value.removeprefix("AST_MODULE_SUPPORT_").lower()
    else:
        names = _split_list(_strings(value) or "")
        target = {
            "requires": mod.requires,
            "optional_modules": mod.optional,
            "enhances": mod.enhances,
        }[key]
        target.extend(names)
        if stack:
            for name in names:
                mod.conditions[name] = " && ".join(stack)


def _module_info(mod: _Module, code: str, resolve: dict[str, str]) -> bool:
    """Fill ``mod`` from its AST_MODULE_INFO block; False when there is none."""
    m = re.search(r"^AST_MODULE_INFO(_STANDARD(?:_EXTENDED|_DEPRECATED)?)?\s*\(", code, re.M)
    if m is None:
        return False
    body = _balanced(code, m.end() - 1)
    if m.group(1) is not None:
        mod.support = {"_STANDARD": "core", "_STANDARD_EXTENDED": "extended"}.get(
            m.group(1), "deprecated"
        )
        desc = _arguments(body)[1:2]
    else:
        desc = _arguments(body)[2:3]
    if desc:
        text = desc[0].strip()
        mod.description = _strings(text) or resolve.get(text)
    stack: list[str] = []
    body = re.sub(r'"\s*\n\s*"', '" "', body)  # "a," <newline> "b": one value
    for line in body.splitlines():
        if _track_condition(stack, line):
            continue
        for fm in _FIELD.finditer(line):
            _field(mod, fm.group(1), line[fm.end() :].strip().rstrip(",").strip(), stack)
    return True


def _definitions(code: str) -> dict[str, str]:
    """``identifier -> string``: ``x[] = "A"``, ``*x = "A"``, ``#define X "A"``.

    An identifier given different strings (in ``#ifdef`` branches: app_voicemail's
    ``tdesc``) is left out: which one is compiled depends on the build.
    """
    found: dict[str, set[str]] = {}
    for m in re.finditer(
        rf"\b(\w+)\s*(?:\[\s*\w*\s*\])?\s*=\s*({_STRING}(?:\s*{_STRING})*)\s*;", code
    ):
        found.setdefault(m.group(1), set()).add(_strings(m.group(2)) or "")
    for m in re.finditer(rf"^\s*#\s*define\s+(\w+)\s+({_STRING})\s*$", code, re.M):
        found.setdefault(m.group(1), set()).add(_strings(m.group(2)) or "")
    return {name: values.pop() for name, values in found.items() if len(values) == 1}


def _table_names(code: str, ident: str) -> list[str]:
    """First strings of a ``{ "Name", func }`` table: ``builtins[x].name``."""
    m = re.search(rf"\b{re.escape(ident)}\s*\[\s*\]\s*=\s*\{{", code)
    if m is None:
        return []
    body = _balanced(code, m.end() - 1, "{", "}")
    names = re.findall(rf"\{{\s*({_STRING})\s*,", body)
    names += re.findall(rf"\.name\s*=\s*({_STRING})", body)
    return [_strings(n) or "" for n in names]


_APP_CALL = re.compile(r"\bast_register_application(?:_xml|2)?\s*\(")


def _applications(code: str, defs: dict[str, str], unresolved: list[str], where: str) -> list[str]:
    names: list[str] = []
    for m in _APP_CALL.finditer(code):
        first = _arguments(_balanced(code, m.end() - 1))[0]
        first = re.sub(r"^\(\s*(const\s+)?char\s*\*\s*\)", "", first).strip()
        literal = _strings(first)
        if literal is not None:
            names.append(literal)
        elif first in defs:
            names.append(defs[first])
        elif re.fullmatch(r"(\w+)\[\w+\]\.name", first):
            names += _table_names(code, first.split("[", 1)[0])
        else:
            unresolved.append(f"{where}: application {first}")
    return names


_ACF_DEF = re.compile(r"\bstruct\s+ast_custom_function\s+(\w+)\s*(\[\s*\w*\s*\])?\s*=\s*\{")
_ACF_CALL = re.compile(r"\b_*ast_custom_function_register\w*\s*\(\s*&?\s*([\w>.\-]+)")


def _functions(code: str, unresolved: list[str], where: str) -> list[str]:
    defined: dict[str, list[str]] = {}
    for m in _ACF_DEF.finditer(code):
        body = _balanced(code, m.end() - 1, "{", "}")
        defined[m.group(1)] = [
            _strings(n) or "" for n in re.findall(rf"\.name\s*=\s*({_STRING})", body)
        ]
    names: list[str] = []
    for m in _ACF_CALL.finditer(code):
        ident = m.group(1)
        if ident in defined:
            names += defined[ident]
        else:
            unresolved.append(f"{where}: function {ident}")
    return names


def _formats(code: str) -> list[str]:
    exts: list[str] = []
    for m in re.finditer(r"\bstruct\s+ast_format_def\s+\w+\s*(?:\[\s*\w*\s*\])?\s*=\s*\{", code):
        body = _balanced(code, m.end() - 1, "{", "}")
        for value in re.findall(rf"\.exts\s*=\s*({_STRING})", body):
            exts += (_strings(value) or "").split("|")
    return exts


def _translators(code: str) -> list[list[str]]:
    pairs: list[list[str]] = []
    for m in re.finditer(r"\bstruct\s+ast_translator\s+\w+\s*=\s*\{", code):
        body = _balanced(code, m.end() - 1, "{", "}")
        src = re.search(rf"\.src_codec\s*=\s*\{{[^}}]*\.name\s*=\s*({_STRING})", body)
        dst = re.search(rf"\.dst_codec\s*=\s*\{{[^}}]*\.name\s*=\s*({_STRING})", body)
        if src and dst:
            pairs.append([_strings(src.group(1)) or "", _strings(dst.group(1)) or ""])
    return pairs


_SORCERY_CALL = re.compile(r"\bast_sorcery_object_register(?:_no_reload)?\s*\(")


def _sorcery_types(code: str, defs: dict[str, str]) -> list[str]:
    """Object types the module registers with a sorcery instance (``type=`` values)."""
    types: list[str] = []
    for m in _SORCERY_CALL.finditer(code):
        args = _arguments(_balanced(code, m.end() - 1))
        if len(args) > 1:
            name = _strings(args[1]) or defs.get(args[1])
            if name:
                types.append(name)
    return types


def _channel_types(code: str, defs: dict[str, str]) -> list[str]:
    """Channel technologies (``PJSIP`` in ``PJSIP/1001``) the module's ``ast_channel_tech``
    structures name."""
    types: list[str] = []
    for m in re.finditer(r"\bstruct\s+ast_channel_tech\s+\w+\s*=\s*\{", code):
        body = _balanced(code, m.end() - 1, "{", "}")
        value = re.search(rf"\.type\s*=\s*({_STRING}|\w+)", body)
        if value:
            name = _strings(value.group(1)) or defs.get(value.group(1))
            if name:
                types.append(name)
    return types


def _config_files(code: str) -> list[str]:
    """``name.conf`` at the start of a string literal: the files the module reads."""
    return re.findall(r'"([A-Za-z0-9_-]+\.conf)(?=[",])', code)


_AMI_ACTION_CALL = re.compile(r"\bast_manager_register(?:_xml(?:_core)?|2)?\s*\(")


def _ami_actions(code: str, defs: dict[str, str], unresolved: list[str], where: str) -> list[str]:
    """AMI actions registered with ``ast_manager_register_xml("Name", ...)``,
    ``ast_manager_register_xml_core``, ``ast_manager_register2`` (or the older
    ``ast_manager_register``), the name a literal, a variable or a ``#define``."""
    names: list[str] = []
    for m in _AMI_ACTION_CALL.finditer(code):
        first = _arguments(_balanced(code, m.end() - 1))[0]
        literal = _strings(first)
        if literal is not None:
            names.append(literal)
        elif first in defs:
            names.append(defs[first])
        elif re.fullmatch(r"\w+", first):
            unresolved.append(f"{where}: AMI action {first}")
        # else: the function's own definition (``const char *action``) in main/manager.c
    return names


#: Calls naming the AMI event they raise: ``(category, "Event", ...)`` or, for
#: ``ast_manager_publish_event``, ``("Event", category, ...)``.
_AMI_EVENT_CALL = re.compile(
    r"\b(manager_event|ast_manager_event|ast_manager_event_multichan"
    r"|ast_manager_event_blob_create|ast_manager_publish_event)\s*\("
)


def _event_names(expr: str, defs: dict[str, str]) -> list[str]:
    """An event name argument: a literal, ``cond ? "A" : "B"``, or a defined name."""
    literal = _strings(expr)
    if literal is not None:
        names = [literal]
    elif re.fullmatch(rf"[^\"]*\?\s*{_STRING}\s*:\s*{_STRING}\s*", expr):
        names = [_strings(lit) or "" for lit in re.findall(_STRING, expr)]
    elif expr in defs:
        names = [defs[expr]]
    else:
        return []
    return [n for n in names if re.fullmatch(r"[A-Za-z]\w*", n)]


def _ami_events(code: str, defs: dict[str, str]) -> list[str]:
    """AMI events the code raises by name (``manager_event(EVENT_FLAG_CALL, "Hangup",
    ...)``, ``ast_manager_event_blob_create(..., "DeviceStateChange", ...)``,
    ``ast_manager_publish_event("FullyBooted", ...)``). Names passed through a
    helper's parameter are not followed."""
    names: list[str] = []
    for m in _AMI_EVENT_CALL.finditer(code):
        args = _arguments(_balanced(code, m.end() - 1))
        index = 0 if m.group(1) == "ast_manager_publish_event" else 1
        if len(args) > index:
            names += _event_names(args[index], defs)
    return names


def _documented_events(raw: str) -> list[str]:
    """Events the sources document (``<managerEvent language="en_US" name="Hangup">`` in
    a ``/*** DOCUMENTATION`` comment), where the raising code passes the name through
    a helper (``queue_channel_to_ami("QueueCallerJoin", ...)``) or a variable."""
    return re.findall(r'<managerEvent\b[^>]*?\bname="(\w+)"', raw)


_TOPIC_DEF = re.compile(r"\bstruct\s+stasis_topic\s*\*\s*(\w+)\s*\(\s*void\s*\)\s*\{")
_MESSAGE_TYPE = re.compile(r"\bSTASIS_MESSAGE_TYPE_DEFN(?:_LOCAL)?\s*\(")


def _topic_events(code: str, defs: dict[str, str]) -> dict[str, list[str]]:
    """``topic function -> AMI events`` for the topics a source file defines
    (``struct stasis_topic *ast_device_state_topic_all(void)``): the events the
    ``.to_ami`` callbacks of the file's message types
    (``STASIS_MESSAGE_TYPE_DEFN(ast_device_state_message_type, .to_ami =
    devstate_to_ami)``) create. Messages published on such a topic become
    those events where the topic is forwarded to the manager's."""
    topics = _TOPIC_DEF.findall(code)
    if not topics:
        return {}
    events: list[str] = []
    for m in _MESSAGE_TYPE.finditer(code):
        for func in re.findall(r"\.to_ami\s*=\s*(\w+)", _balanced(code, m.end() - 1)):
            body = re.search(rf"\b{func}\s*\([^;{{}}]*\)\s*\{{", code)
            if body is not None:
                events += _ami_events(_balanced(code, body.end() - 1, "{", "}"), defs)
    return {topic: sorted(set(events)) for topic in topics}


_FORWARD_CALL = re.compile(r"\bstasis_forward_all\s*\(")


def _manager_forwards(
    code: str,
    defs: dict[str, str],
    topics: dict[str, list[str]],
    unresolved: list[str],
    where: str,
) -> list[str]:
    """AMI events that reach the manager only because this module forwards their
    topic to it: ``stasis_forward_all(ast_device_state_topic_all(), manager_topic)``
    with ``manager_topic = ast_manager_get_topic();`` (res/res_manager_devicestate.c).
    The events are those of the forwarded topic (:func:`_topic_events`)."""
    assigned = dict(re.findall(r"\b(\w+)\s*=\s*(\w+)\s*\(\s*\)\s*;", code))

    def topic(expr: str) -> str | None:
        call = re.fullmatch(r"(\w+)\s*\(\s*\)", expr)
        return call.group(1) if call else assigned.get(expr)

    own = {**topics, **_topic_events(code, defs)}
    events: list[str] = []
    for m in _FORWARD_CALL.finditer(code):
        args = _arguments(_balanced(code, m.end() - 1))
        if len(args) != 2 or topic(args[1]) != "ast_manager_get_topic":
            continue
        source = topic(args[0])
        found = own.get(source or "")
        if found:
            events += found
        else:
            unresolved.append(f"{where}: AMI events forwarded from {source or args[0]}")
    return events


def _moduleinfo_defaultenabled(raw: str) -> bool:
    m = re.search(r"/\*\*\*\s*MODULEINFO(.*?)\*\*\*/", raw, re.S)
    return not (m and re.search(r"<defaultenabled>\s*no\s*</defaultenabled>", m.group(1)))


def _extra_sources(git: _Git, directory: str) -> dict[str, list[str]]:
    """``MOD_ADD_C,module,sources`` of ``<directory>/Makefile``, wildcards expanded."""
    makefile = f"{directory}/Makefile"
    if not git.exists(makefile):
        return {}
    extra: dict[str, list[str]] = {}
    for m in re.finditer(r"\$\(call MOD_ADD_C,(\w+),(.*)\)\s*$", git.read(makefile), re.M):
        files: list[str] = []
        for word in re.sub(r"\$\(wildcard ([^)]*)\)", r"\1", m.group(2)).split():
            pattern = f"{directory}/{word}"
            files += sorted(p for p in git.tree if fnmatch.fnmatchcase(p, pattern))
        extra[m.group(1)] = [f for f in files if f.endswith(".c")]
    return extra


def _load(git: _Git, paths: list[str]) -> _Source:
    """The module's sources, with the ``#define``s of the project headers they include
    (``PARK_APPLICATION`` is in ``include/asterisk/parking.h``, via ``res_parking.h``)."""
    raw = "\n".join(git.read(p) for p in paths)
    headers: list[str] = []
    pending = list(paths)
    while pending:  # headers including headers
        path = pending.pop(0)
        for name in re.findall(r'^\s*#\s*include\s+"([^"]+)"', git.read(path), re.M):
            for candidate in (f"include/{name}", str(PurePosixPath(path).parent / name)):
                if git.exists(candidate) and candidate not in headers:
                    headers.append(candidate)
                    pending.append(candidate)
    own = "\n".join(git.code(p) for p in paths)
    code = own + "\n" + "\n".join(git.string_defines(h) for h in headers)
    return _Source(paths, raw, code, own, raw + "\n" + _xml_docs(git, paths))


def _xml_docs(git: _Git, paths: list[str]) -> str:
    """The documentation kept out of the C files: ``main/manager_doc.xml`` next to
    ``main/manager.c``, and the ``*.xml`` of a directory whose sources a Makefile adds
    to a module (``res/res_pjsip/pjsip_manager.xml`` for res_pjsip)."""
    found = [p.removesuffix(".c") + "_doc.xml" for p in paths]
    dirs = {str(PurePosixPath(p).parent) for p in paths[1:]}
    found += [p for p in sorted(git.tree) if str(PurePosixPath(p).parent) in dirs]
    return "\n".join(
        git.read(p) for p in dict.fromkeys(found) if p.endswith(".xml") and git.exists(p)
    )


def _fill(mod: _Module, src: _Source, unresolved: list[str], topics: dict[str, list[str]]) -> None:
    defs = _definitions(src.code)
    mod.applications = sorted(set(_applications(src.code, defs, unresolved, mod.name)))
    mod.functions = sorted(set(_functions(src.code, unresolved, mod.name)))
    mod.file_extensions = sorted(set(_formats(src.code)))
    mod.translators = sorted(_translators(src.code))
    mod.sorcery_types = sorted(set(_sorcery_types(src.code, defs)))
    mod.channel_types = sorted(set(_channel_types(src.code, defs)))
    mod.config_files = sorted(set(_config_files(src.own)))
    mod.ami_actions = sorted(set(_ami_actions(src.code, defs, unresolved, mod.name)))
    mod.ami_events = sorted(set(_ami_events(src.code, defs) + _documented_events(src.docs)))
    mod.ami_forwards = sorted(set(_manager_forwards(src.code, defs, topics, unresolved, mod.name)))


def generate(git_dir: Path, ref: str) -> dict[str, Any]:
    """The table, as written to the JSON file."""
    git = _Git(git_dir, ref)
    modules: dict[str, _Module] = {}
    unresolved: list[str] = []
    main_sources = sorted(
        p for p in git.tree if str(PurePosixPath(p).parent) == "main" and p.endswith(".c")
    )
    topics: dict[str, list[str]] = {}
    for path in main_sources:
        code = _load(git, [path]).code
        topics.update(_topic_events(code, _definitions(code)))
    for directory in MODULE_DIRS:
        extra = _extra_sources(git, directory)
        for path in sorted(git.tree):
            pp = PurePosixPath(path)
            if str(pp.parent) != directory or pp.suffix != ".c":
                continue
            src = _load(git, [path, *extra.get(pp.stem, [])])
            mod = _Module(name=pp.stem, source=path)
            if git.tree[path][0] == "120000":  # app_voicemail_imap.c -> app_voicemail.c
                mod.variant_of = PurePosixPath(git.read_link(path)).stem
            if not _module_info(mod, src.code, _definitions(src.code)):
                continue  # a helper compiled into another module (sig_pri.c, ...)
            mod.defaultenabled = _moduleinfo_defaultenabled(src.raw)
            _fill(mod, src, unresolved, topics)
            modules[mod.name] = mod
    main_make = git.read("main/Makefile")
    m = re.search(r"^MOD_SRC:=(.*)$", main_make, re.M)
    builtin_files = {f"main/{name}" for name in (m.group(1).split() if m else [])}
    core = _Module(name="core", source="main/*.c")
    core_apps: set[str] = set()
    core_funcs: set[str] = set()
    core_confs: set[str] = set()
    core_techs: set[str] = set()
    core_actions: set[str] = set()
    core_events: set[str] = set()
    for path in main_sources:
        pp = PurePosixPath(path)
        if path in _REGISTRY_API:
            continue
        src = _load(git, [path])
        if path in builtin_files:
            named = re.search(rf"^\s*#\s*define\s+AST_MODULE\s+({_STRING})", src.code, re.M)
            name = (_strings(named.group(1)) if named else None) or pp.stem
            mod = _Module(name=name, source=path, builtin=True)
            _module_info(mod, src.code, _definitions(src.code))
            _fill(mod, src, unresolved, topics)
            modules[name] = mod
        else:
            _fill(core, src, unresolved, topics)
            core_apps.update(core.applications)
            core_funcs.update(core.functions)
            core_confs.update(core.config_files)
            core_techs.update(core.channel_types)
            core_actions.update(core.ami_actions)
            core_events.update(core.ami_events)
    return {
        "asterisk": {"ref": ref, "commit": git.commit},
        "generated_by": (
            f"python -m ivr.deploy.asterisk_modules_gen --git-dir PATH --ref {ref} "
            "(PATH: a clone of https://github.com/asterisk/asterisk)"
        ),
        "core": {
            "applications": sorted(core_apps),
            "functions": sorted(core_funcs),
            "config_files": sorted(core_confs),
            "channel_types": sorted(core_techs),
            "ami_actions": sorted(core_actions),
            "ami_events": sorted(core_events),
        },
        "modules": {name: modules[name].to_json() for name in sorted(modules)},
        "unresolved": sorted(set(unresolved)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ivr.deploy.asterisk_modules_gen",
        description="Write the Asterisk module table (requires, applications, functions).",
    )
    parser.add_argument("--git-dir", type=Path, required=True, help="a clone of asterisk/asterisk")
    parser.add_argument("--ref", default="22.9.0", help="tag, branch or commit (default 22.9.0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    table = generate(args.git_dir, args.ref)
    args.out.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(
        f"{args.out}: {len(table['modules'])} modules from Asterisk {args.ref} "
        f"({table['asterisk']['commit'][:12]}); {len(table['unresolved'])} names left unresolved",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
