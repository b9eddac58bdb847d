"""A flow's diagram for the browser: Graphviz's SVG with nothing but drawing left in it.

The picture is our own output (:func:`ivr.flows.graph.svg`), but its labels
are node names and edge texts from a YAML file an admin typed; Graphviz
escapes them as XML text, and this module keeps it so whatever changes
upstream: every element and attribute outside a list of drawing ones goes (no
script, no ``on*`` handler, no link, no style sheet, no ``url()`` but a local
``#id``). The console serves it as ``image/svg+xml`` with a policy that allows
nothing to run, and the page shows it through ``<img>``, where an SVG never
runs scripts anyway.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Final

__all__ = ["SVG_POLICY", "UnsafeSvg", "sanitised"]

_SVG: Final = "http://www.w3.org/2000/svg"
_ELEMENTS: Final = frozenset(
    {
        "svg", "g", "title", "polygon", "polyline", "path", "ellipse", "circle", "rect",
        "line", "text", "tspan", "defs", "linearGradient", "radialGradient", "stop",
    }
)  # fmt: skip
_ATTRIBUTES: Final = frozenset(
    {
        "width", "height", "viewBox", "class", "id", "transform", "fill", "stroke",
        "stroke-width", "stroke-dasharray", "points", "d", "cx", "cy", "rx", "ry", "r", "x",
        "y", "x1", "y1", "x2", "y2", "text-anchor", "font-family", "font-size",
        "font-weight", "font-style", "offset", "stop-color", "stop-opacity", "fill-opacity",
        "stroke-opacity", "gradientUnits", "preserveAspectRatio", "version",
    }
)  # fmt: skip
_URL: Final = re.compile(r"url\(\s*(?!#)", re.IGNORECASE)
#: Sent with the picture: nothing loads or runs from it, even opened on its own.
SVG_POLICY: Final = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


class UnsafeSvg(ValueError):  # noqa: N818 - a refusal
    """The text is not an SVG picture this module can vouch for."""


def sanitised(text: str) -> str:
    """``text`` (an SVG document) with only drawing elements and attributes."""
    if "<!ENTITY" in text:
        raise UnsafeSvg("entity declarations are not drawn")
    try:
        root = ET.fromstring(text)  # noqa: S314 - no entities (above); DTDs are not fetched
    except ET.ParseError as exc:
        raise UnsafeSvg(f"not XML: {exc}") from None
    if root.tag != f"{{{_SVG}}}svg":
        raise UnsafeSvg("not an SVG document")
    _clean(root)
    ET.register_namespace("", _SVG)
    return ET.tostring(root, encoding="unicode")


def _local(tag: str) -> str | None:
    """The element's name in the SVG namespace; None for any other namespace."""
    if tag.startswith(f"{{{_SVG}}}"):
        return tag[len(_SVG) + 2 :]
    return None


def _clean(element: ET.Element) -> None:
    for name in list(element.attrib):
        value = element.attrib[name]
        if name not in _ATTRIBUTES or _URL.search(value) or "javascript:" in value.lower():
            del element.attrib[name]
    for child in list(element):
        if _local(child.tag) not in _ELEMENTS:
            element.remove(child)
        else:
            _clean(child)
