"""Graph properties on random DAGs: order, determinism, cycles."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockerpkg.core.graph import CycleError, reachable, topological_order


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """A random DAG: node i may only depend on nodes with a smaller index."""
    size = draw(st.integers(min_value=1, max_value=40))
    names = draw(
        st.lists(
            st.text("abcdefgh", min_size=1, max_size=6), min_size=size, max_size=size, unique=True
        )
    )
    graph: dict[str, list[str]] = {}
    for index, name in enumerate(names):
        parents = (
            draw(st.lists(st.sampled_from(names[:index]), max_size=3, unique=True)) if index else []
        )
        graph[name] = parents
    return graph


class TestTopologicalOrder:
    """Every dependency comes first, whatever order the input lists nodes in."""

    @given(dags())
    def test_parents_first(self, graph: dict[str, list[str]]) -> None:
        order = topological_order(graph)
        position = {name: i for i, name in enumerate(order)}
        assert sorted(order) == sorted(graph)
        for node, parents in graph.items():
            assert all(position[p] < position[node] for p in parents)

    @given(dags(), st.randoms())
    def test_input_order_does_not_matter(
        self, graph: dict[str, list[str]], rnd: random.Random
    ) -> None:
        items = list(graph.items())
        rnd.shuffle(items)
        shuffled = {k: sorted(v, key=lambda _: rnd.random()) for k, v in items}
        assert topological_order(shuffled) == topological_order(graph)

    def test_ties_broken_by_name(self) -> None:
        assert topological_order({"c": [], "b": [], "a": ["c"]}) == ("b", "c", "a")


class TestCycles:
    """A cycle is always reported, naming the nodes on it."""

    @settings(max_examples=200)
    @given(dags(), st.data())
    def test_back_edge_makes_cycle(self, graph: dict[str, list[str]], data: st.DataObject) -> None:
        order = topological_order(graph)
        # Pick a node with an ancestor and add an edge from that ancestor back to it.
        candidates = [n for n in order if graph[n]]
        if not candidates:
            graph[order[0]] = [order[0]]
            node, ancestor = order[0], order[0]
        else:
            node = data.draw(st.sampled_from(candidates))
            ancestor = data.draw(st.sampled_from(sorted(reachable(graph, graph[node]))))
            graph[ancestor] = [*graph[ancestor], node]
        with pytest.raises(CycleError) as info:
            topological_order(graph)
        cycle = info.value.cycle
        assert cycle[0] == cycle[-1]
        assert node in cycle
        assert ancestor in cycle
