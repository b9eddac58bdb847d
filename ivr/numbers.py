"""Which numbers the engine may dial for a caller: one rule for transfers and callbacks.

An outside number is dialled only when it matches a pattern of the allow-list
(``IVR_TRANSFER_ALLOW``, e.g. ``+8210*,1???``); nothing but digits and a
leading ``+`` ever reaches a dial string. Extensions (2-6 digits) use the
internal dial template, other numbers the trunk's.
"""

from __future__ import annotations

import fnmatch
import re

__all__ = ["EXTENSION", "NUMBER", "callback_dial"]

EXTENSION = re.compile(r"^[1-9][0-9]{1,5}$")
NUMBER = re.compile(r"^\+?[0-9]{3,20}$")


def callback_dial(
    number: str, allow: tuple[str, ...], *, internal: str, external: str
) -> str | None:
    """The dial string to call ``number`` back, or None when it may not be called.

    A callback goes to the caller ID, which callers can spoof: so even an
    extension must be on the allow-list (``1???`` admits four-digit ones).
    """
    if not NUMBER.fullmatch(number) or not any(fnmatch.fnmatchcase(number, p) for p in allow):
        return None
    template = internal if EXTENSION.fullmatch(number) else external
    return template.format(to=number)
