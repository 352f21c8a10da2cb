"""The dependency graph of a tree as text: Graphviz DOT or Mermaid, for docs and reviews.

Arrows go from an image to the images built on it (parent -> child), the way builds flow:
base images first. Tree images are labelled `name:tag`; the base images of `base_images`
they use are shown with their full label, drawn dashed. The output depends only on the tree:
nodes come base images first (sorted by label), then tree images in build order, and edges
by child in build order, then by parent.
"""

from __future__ import annotations

import enum
import re

import attrs

from dockerpkg.core.graph import reachable
from dockerpkg.core.planner import selected_names
from dockerpkg.core.tree import Tree


class GraphFormat(enum.Enum):
    """Output formats; the value is the CLI's spelling."""

    DOT = "dot"
    MERMAID = "mermaid"


@attrs.frozen
class Node:
    """One box of the drawing."""

    key: str  # unique: a tree image's name, or a base image's label
    label: str
    base: bool


@attrs.frozen
class Graph:
    """The part of a tree to draw: nodes in output order, edges as (parent key, child key)."""

    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]


def select_graph(tree: Tree, select: str | None = None) -> Graph:
    """The images whose full label matches SELECT (fnmatch, as plan's --select; None: all),
    every image they depend on, directly or not, and the base images those use."""
    selected = selected_names(tree, select)
    keep = reachable({n: i.parents for n, i in tree.images.items()}, selected)
    names = [n for n in tree.order if n in keep]
    bases = sorted({b for n in names for b in tree.images[n].bases})
    nodes = [Node(key=b, label=b, base=True) for b in bases]
    nodes += [Node(key=n, label=f"{n}:{tree.images[n].tag}", base=False) for n in names]
    edges: list[tuple[str, str]] = []
    for name in names:
        image = tree.images[name]
        edges += [(base, name) for base in image.bases]
        edges += [(parent, name) for parent in image.parents]
    return Graph(nodes=tuple(nodes), edges=tuple(edges))


def _dot_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def to_dot(graph: Graph) -> str:
    """Graphviz: `dot -Tsvg` draws it. Node IDs are the image names and base labels."""
    ids = {n.key: _dot_string(("base " if n.base else "") + n.key) for n in graph.nodes}
    lines = [
        "// dockerpkg graph: an arrow from each image to the images built on it",
        "digraph images {",
        "  node [shape=box, style=rounded];",
    ]
    for node in graph.nodes:
        style = ", style=dashed" if node.base else ""
        lines.append(f"  {ids[node.key]} [label={_dot_string(node.label)}{style}];")
    lines += [f"  {ids[parent]} -> {ids[child]};" for parent, child in graph.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_ids(nodes: tuple[Node, ...]) -> dict[str, str]:
    """Identifiers Mermaid accepts (letters, digits, `_`): `i_` or `b_` (tree or base image),
    then the key with every run of other characters as one `_`; a key that would repeat an
    earlier one gets `_2`, `_3`, ... (nodes come in a fixed order, so ids are stable)."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for node in nodes:
        plain = re.sub(r"[^A-Za-z0-9]+", "_", node.key).strip("_")
        candidate = ("b_" if node.base else "i_") + plain
        unique, number = candidate, 1
        while unique in taken:
            number += 1
            unique = f"{candidate}_{number}"
        taken.add(unique)
        ids[node.key] = unique
    return ids


def _mermaid_label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def to_mermaid(graph: Graph) -> str:
    """A Mermaid flowchart, top to bottom; base images as dashed stadiums."""
    ids = _mermaid_ids(graph.nodes)
    lines = ["%% dockerpkg graph: an arrow from each image to the images built on it"]
    lines.append("flowchart TD")
    for node in graph.nodes:
        label = _mermaid_label(node.label)
        lines.append(
            f"  {ids[node.key]}([{label}])" if node.base else f"  {ids[node.key]}[{label}]"
        )
    lines += [f"  {ids[parent]} --> {ids[child]}" for parent, child in graph.edges]
    bases = [ids[n.key] for n in graph.nodes if n.base]
    if bases:
        lines.append("  classDef base stroke-dasharray: 5 5")
        lines.append(f"  class {','.join(bases)} base")
    return "\n".join(lines) + "\n"


def render_graph(tree: Tree, fmt: GraphFormat, select: str | None = None) -> str:
    """The (selected part of the) tree's dependency graph as FMT text."""
    graph = select_graph(tree, select)
    return to_dot(graph) if fmt is GraphFormat.DOT else to_mermaid(graph)
