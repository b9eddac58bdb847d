"""Asterisk's C escaping of AMI event fields, and its inverse.

Asterisk 22 passes some event fields through ``ast_escape_c_alloc``
(main/utils.c) before writing them: ``CallerIDName``, ``ConnectedLineName``
and every ``ChanVariable`` value of a channel block
(``ast_manager_build_channel_state_string_prefix``, main/manager_channels.c:
so every channel event, with any prefix: ``Dest``, ``Spyer``, ``Spyee``), and
``VarSet``'s ``Value`` (``varset_to_ami``, main/stasis_channels.c).
``ast_escape_c`` replaces each of the eleven characters of ``escape_sequences``
(BEL, BS, FF, LF, CR, TAB, VT, backslash, single and double quote, ``?``) by a
backslash and its letter (``\\a \\b \\f \\n \\r \\t \\v \\\\ \\' \\" \\?``) and
copies every other byte as it is (commas, semicolons, UTF-8 sequences).
Not escaped: the other headers, ``OriginateResponse``'s ``CallerIDName`` (it
is the Originate's own CallerID, written raw by ``fast_originate``, main/manager.c)
and action responses such as ``Getvar``'s ``Value``. :func:`escape_c` is
``ast_escape_c`` (the emulator uses it); :func:`unescape_c` inverts it exactly,
and leaves a backslash that ``ast_escape_c`` cannot have produced as it is.
"""

from __future__ import annotations

import re

__all__ = ["ESCAPED_CHARACTERS", "escape_c", "unescape_c"]

#: ``escape_sequences`` -> ``escape_sequences_map`` of main/utils.c, in their order.
ESCAPED_CHARACTERS: dict[str, str] = {
    "\a": "a",
    "\b": "b",
    "\f": "f",
    "\n": "n",
    "\r": "r",
    "\t": "t",
    "\v": "v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_ESCAPE = str.maketrans({char: "\\" + letter for char, letter in ESCAPED_CHARACTERS.items()})
_UNESCAPE = {letter: char for char, letter in ESCAPED_CHARACTERS.items()}
_SEQUENCE = re.compile(r"\\([abfnrtv\\'\"?])")


def escape_c(text: str) -> str:
    """What ``ast_escape_c`` makes of ``text``."""
    return text.translate(_ESCAPE)


def unescape_c(text: str) -> str:
    """The string ``ast_escape_c`` was given, from what it wrote."""
    if "\\" not in text:
        return text
    return _SEQUENCE.sub(lambda match: _UNESCAPE[match.group(1)], text)
