"""The 520 usage replies Asterisk 22 sends for a command with wrong arguments.

res_agi.c answers ``520-Invalid command syntax.  Proper usage follows:``,
the command's usage text, then ``520 End of proper usage.``. The text below
for WAIT FOR DIGIT is the transcript's, byte for byte.
"""

from __future__ import annotations

__all__ = ["USAGE", "usage_reply"]

USAGE: dict[str, str] = {
    "WAIT FOR DIGIT": (
        "Waits up to <replaceable>timeout</replaceable> milliseconds for channel to receive a "
        "DTMF digit. Returns <literal>-1</literal> on channel failure, <literal>0</literal> if "
        "no digit is received in the timeout, or the numerical value of the ascii of the digit "
        "if one is received. Use <literal>-1</literal> for the <replaceable>timeout</replaceable> "
        "value if you desire the call to block indefinitely."
    ),
}


def usage_reply(command: str) -> bytes:
    text = USAGE.get(command)
    if text is None:
        return b"520 Invalid command syntax.  Proper usage not available.\n"
    return (
        "520-Invalid command syntax.  Proper usage follows:\n"
        f"{text}\n"
        "520 End of proper usage.\n"
    ).encode()
