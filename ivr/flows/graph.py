"""Pictures of a flow: Mermaid text (for docs and GitHub) and a standalone SVG.

The SVG needs no graph tool: nodes are laid out in rows by their distance
from the entry node, edges are straight (or curved when they go back up),
and each edge is labelled with what takes it (a key, a condition, failure).
"""

from __future__ import annotations

from collections import deque
from html import escape

from ivr.flows.model import Branch, Flow, Menu, targets_of

__all__ = ["edges", "mermaid", "svg"]

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


def _layers(flow: Flow) -> dict[str, int]:
    depth = {flow.start: 0}
    queue = deque([flow.start])
    following = {name: [t for s, t, _ in edges(flow) if s == name] for name in flow.nodes}
    while queue:
        name = queue.popleft()
        for target in following[name]:
            if target not in depth:
                depth[target] = depth[name] + 1
                queue.append(target)
    last = max(depth.values(), default=0)
    for name in flow.nodes:
        depth.setdefault(name, last + 1)
    return depth


def svg(flow: Flow) -> str:
    """A standalone SVG drawing of the flow."""
    box_w, box_h, gap_x, gap_y = 170, 46, 40, 70
    depth = _layers(flow)
    rows: dict[int, list[str]] = {}
    for name in flow.nodes:
        rows.setdefault(depth[name], []).append(name)
    widest = max(len(r) for r in rows.values())
    width = widest * (box_w + gap_x) + gap_x + 80  # room for curves going back up
    height = len(rows) * (box_h + gap_y) + gap_y
    where: dict[str, tuple[float, float]] = {}
    for level, names in rows.items():
        offset = (width - len(names) * (box_w + gap_x) + gap_x) / 2
        for index, name in enumerate(names):
            where[name] = (offset + index * (box_w + gap_x), gap_y / 2 + level * (box_h + gap_y))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="12">',
        "<defs><marker id='a' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='7' "
        "markerHeight='7' orient='auto-start-reverse'><path d='M0 0L10 5L0 10z' "
        "fill='#555'/></marker></defs>",
        f"<title>{escape(flow.id)}</title>",
    ]
    merged: dict[tuple[str, str], list[str]] = {}
    for source, target, label in edges(flow):  # one arrow per pair, labels joined
        merged.setdefault((source, target), []).append(label)
    for (source, target), labels in merged.items():
        label = "; ".join(filter(None, labels))
        (x1, y1), (x2, y2) = where[source], where[target]
        sx, sy = x1 + box_w / 2, y1 + box_h
        tx, ty = x2 + box_w / 2, y2
        if ty > sy:
            path = f"M{sx:.0f} {sy:.0f}L{tx:.0f} {ty:.0f}"
            # Near the target: arrows fanning out of a menu are apart there.
            lx, ly = sx + (tx - sx) * 0.72, sy + (ty - sy) * 0.72 - 4
        else:  # back up or sideways: a curve out to the side
            side = max(x1, x2) + box_w + gap_x / 2
            path = f"M{x1 + box_w:.0f} {y1 + box_h / 2:.0f}C{side:.0f} {y1:.0f} {side:.0f} "
            path += f"{y2 + box_h:.0f} {x2 + box_w:.0f} {y2 + box_h / 2:.0f}"
            lx, ly = side, (y1 + y2) / 2 + box_h / 2
        out.append(f"<path d='{path}' fill='none' stroke='#555' marker-end='url(#a)'/>")
        if label:
            short = label if len(label) <= 28 else label[:27] + "…"
            out.append(
                f"<text x='{lx:.0f}' y='{ly:.0f}' text-anchor='middle' fill='#0a5' "
                f"font-size='11'>{escape(short)}</text>"
            )
    for name, (x, y) in where.items():
        node = flow.nodes[name]
        end = node.type in ("hangup", "return", "voicemail", "transfer")
        fill = "#fde2e2" if end else ("#e3effd" if node.type in ("menu", "gather") else "#f4f4f4")
        radius = 20 if end else 6
        start = " stroke-width='2.5'" if name == flow.start else ""
        out.append(
            f"<rect x='{x:.0f}' y='{y:.0f}' width='{box_w}' height='{box_h}' rx='{radius}' "
            f"fill='{fill}' stroke='#333'{start}/>"
            f"<text x='{x + box_w / 2:.0f}' y='{y + 19:.0f}' text-anchor='middle' "
            f"font-weight='bold'>{escape(name)}</text>"
            f"<text x='{x + box_w / 2:.0f}' y='{y + 35:.0f}' text-anchor='middle' "
            f"fill='#666'>{escape(node.type)}</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
