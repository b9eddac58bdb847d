"""Pictures of a flow: Mermaid text (for docs and GitHub) and an SVG laid out by
Graphviz.

The layout is Graphviz's ``dot`` (through the ``graphviz`` package and Debian's
``graphviz``): ranks from the entry node, edges routed around the boxes,
labels placed beside them, a font with Hangul (Nanum Gothic, Debian's
``fonts-nanum``; Noto Sans CJK where installed) so Korean prompts and
phrases are drawn, not boxes. Each edge says what takes it (a key, a
condition, failure).
"""

from __future__ import annotations

import shutil

import graphviz

from ivr.errors import IvrError
from ivr.flows.model import Branch, Flow, Menu, targets_of

__all__ = ["GraphError", "edges", "mermaid", "svg"]

Edge = tuple[str, str, str]  # from, to, label
_NAMED = {"on_failure", "on_error", "else", "open", "closed", "no_input", "no_match", "invalid"}


def edges(flow: Flow) -> list[Edge]:
    """Every (from, to, label) in the flow."""
    found: list[Edge] = []
    for name, node in flow.nodes.items():
        for path, target in targets_of(node):
            label = ""
            if path[0] == "options" and isinstance(node, Menu):
                option = node.options[int(path[1])]
                label = " / ".join(filter(None, [option.digit, *option.phrases[:2]]))
            elif path[0] == "conditions" and isinstance(node, Branch):
                label = node.conditions[int(path[1])].if_
            elif path[0] in _NAMED:
                label = str(path[0]).replace("_", " ")
            found.append((name, target, label))
    return found


def _id(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def mermaid(flow: Flow) -> str:
    lines = ["flowchart TD"]
    for name, node in flow.nodes.items():
        shape = ("([", "])") if node.type in ("hangup", "return", "voicemail") else ("[", "]")
        label = f"{name}<br/><i>{node.type}</i>"
        lines.append(f'  {_id(name)}{shape[0]}"{label}"{shape[1]}')
    for source, target, label in edges(flow):
        text = f' -- "{label.replace(chr(34), "&quot;")}" -->' if label else " -->"
        lines.append(f"  {_id(source)}{text} {_id(target)}")
    return "\n".join(lines) + "\n"


#: Fonts with Hangul first: Graphviz (through fontconfig) takes the first installed.
FONT = "NanumGothic,Noto Sans CJK KR,Noto Sans CJK JP,sans-serif"
_ENDS = ("hangup", "return", "voicemail", "transfer")


class GraphError(IvrError):
    """The picture cannot be drawn (Graphviz's ``dot`` is missing or failed)."""


def _label(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def svg(flow: Flow) -> str:
    """The flow drawn by Graphviz, as SVG text."""
    if shutil.which("dot") is None:
        raise GraphError("Graphviz's dot is not installed: ./dev setup installs it (apt graphviz)")
    graph = graphviz.Digraph(flow.id, format="svg")
    graph.attr(rankdir="TB", fontname=FONT, nodesep="0.35", ranksep="0.45")
    graph.attr("node", fontname=FONT, fontsize="11", shape="box", style="rounded,filled")
    graph.attr("edge", fontname=FONT, fontsize="10", color="#555555", fontcolor="#007755")
    for name, node in flow.nodes.items():
        end = node.type in _ENDS
        fill = "#fde2e2" if end else ("#e3effd" if node.type in ("menu", "gather") else "#f4f4f4")
        graph.node(
            _id(name),
            f"{name}\n{node.type}",
            fillcolor=fill,
            shape="box",
            penwidth="2.5" if name == flow.start else "1",
            style="rounded,filled" if end else "filled",
        )
    merged: dict[tuple[str, str], list[str]] = {}
    for source, target, label in edges(flow):  # one arrow per pair, labels joined
        merged.setdefault((source, target), []).append(label)
    for (source, target), labels in merged.items():
        graph.edge(_id(source), _id(target), label=_label("; ".join(filter(None, labels))))
    try:
        drawn: str = graph.pipe(format="svg", encoding="utf-8")
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError) as exc:
        raise GraphError(f"Graphviz could not draw {flow.id!r}: {exc}") from exc
    return drawn
