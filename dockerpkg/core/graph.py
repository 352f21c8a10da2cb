"""Dependency graph algorithms: deterministic order, cycles, and walks, all linear-ish."""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Iterable, Mapping


class CycleError(Exception):
    """The graph has a cycle; `cycle` lists its nodes, first node repeated at the end."""

    def __init__(self, cycle: tuple[str, ...]) -> None:
        self.cycle = cycle
        super().__init__(" -> ".join(cycle))


def topological_order(parents: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """Every node after its parents; among nodes ready together, the smallest name first.

    Nodes named only as parents are left out: they are outside the graph (base images).
    """
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for node, deps in parents.items():
        sorter.add(node, *(d for d in deps if d in parents))
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise CycleError(_canonical_cycle(tuple(exc.args[1]))) from None
    ready: list[str] = list(sorter.get_ready())
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        sorter.done(node)
        for item in sorter.get_ready():
            heapq.heappush(ready, item)
    return tuple(order)


def _canonical_cycle(cycle: tuple[str, ...]) -> tuple[str, ...]:
    """Rotate a cycle to start at its smallest name, so the message does not vary by run."""
    nodes = list(cycle[:-1]) if len(cycle) > 1 and cycle[0] == cycle[-1] else list(cycle)
    # graphlib reports the cycle against the edge direction (node, then its parent).
    nodes.reverse()
    start = nodes.index(min(nodes))
    rotated = nodes[start:] + nodes[:start]
    return (*rotated, rotated[0])


def children_of(parents: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """Invert parent edges; children sorted by name."""
    result: dict[str, list[str]] = {node: [] for node in parents}
    for node, deps in parents.items():
        for dep in deps:
            if dep in result:
                result[dep].append(node)
    return {node: tuple(sorted(kids)) for node, kids in result.items()}


def reachable(edges: Mapping[str, Iterable[str]], start: Iterable[str]) -> frozenset[str]:
    """Every node reachable from START (included) along EDGES; each node visited once."""
    seen: set[str] = set()
    stack = list(start)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(n for n in edges.get(node, ()) if n not in seen)
    return frozenset(seen)
