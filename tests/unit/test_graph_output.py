"""`dockerpkg graph`: golden DOT and Mermaid of the example tree (a diamond on a base image),
--select, --out, determinism, and the identifiers of awkward names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dockerpkg.cli import main
from dockerpkg.core.graph_render import GraphFormat, Node, render_graph, select_graph, to_mermaid
from dockerpkg.core.tree import load_tree
from dockerpkg.effects.configfile import read_config
from dockerpkg.effects.tree import read_snapshot
from tests.support.golden import check_golden
from tests.support.updates import write_tree

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ["-c", "examples/config.yaml"]
SUFFIX = {"dot": "dot", "mermaid": "mmd"}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(args)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.usefixtures("at_root")
class TestGolden:
    """The example tree: base -> tools, web -> app, and base on the busybox base image."""

    @pytest.mark.parametrize("fmt", ["dot", "mermaid"])
    def test_whole_tree(self, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, err = run([*CONFIG, "graph", "--format", fmt, "examples/tree"], capsys)
        assert (status, err) == (0, "")
        check_golden(f"graph/example.{SUFFIX[fmt]}", out)

    @pytest.mark.parametrize("fmt", ["dot", "mermaid"])
    def test_select_keeps_what_the_selection_needs(
        self, fmt: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        args = [*CONFIG, "graph", "--format", fmt, "--select", "*/example-web:*", "examples/tree"]
        status, out, err = run(args, capsys)
        assert (status, err) == (0, "")
        check_golden(f"graph/example-select-web.{SUFFIX[fmt]}", out)
        assert "example-tools" not in out
        assert "example-app" not in out

    def test_dot_is_the_default(self, capsys: pytest.CaptureFixture[str]) -> None:
        _, default, _ = run([*CONFIG, "graph", "examples/tree"], capsys)
        _, dot, _ = run([*CONFIG, "graph", "--format", "dot", "examples/tree"], capsys)
        assert default == dot
        assert default.splitlines()[1] == "digraph images {"

    def test_out_writes_the_file_only(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        target = tmp_path / "graph.mmd"
        args = [*CONFIG, "graph", "--format", "mermaid", "--out", str(target), "examples/tree"]
        status, out, _ = run(args, capsys)
        assert (status, out) == (0, "")
        _, printed, _ = run([*CONFIG, "graph", "--format", "mermaid", "examples/tree"], capsys)
        assert target.read_text(encoding="utf-8") == printed

    def test_selection_matching_nothing(self, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, err = run([*CONFIG, "graph", "--select", "nothing*", "examples/tree"], capsys)
        assert status == 0
        assert err == "no image matches --select nothing*\n"
        assert out.splitlines()[1:] == [
            "digraph images {",
            "  node [shape=box, style=rounded];",
            "}",
        ]

    def test_unknown_format_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exc:
            main([*CONFIG, "graph", "--format", "svg", "examples/tree"])
        assert exc.value.code == 2
        assert "invalid choice: 'svg'" in capsys.readouterr().err


class TestGraphOfTheCore:
    """select_graph straight from a Tree: edges point from parent to child."""

    def test_edges_and_nodes(self) -> None:
        config = read_config(str(ROOT / "examples" / "config.yaml"), {}).config
        tree = load_tree(read_snapshot(str(ROOT / "examples" / "tree")), config, render=False)
        graph = select_graph(tree)
        base = "127.0.0.1:5000/base/busybox:1.36"
        assert [n.key for n in graph.nodes] == [
            base,
            "example-base",
            "example-tools",
            "example-web",
            "example-app",
        ]
        assert [n.base for n in graph.nodes] == [True, False, False, False, False]
        assert graph.edges == (
            (base, "example-base"),
            ("example-base", "example-tools"),
            ("example-base", "example-web"),
            ("example-tools", "example-app"),
            ("example-web", "example-app"),
        )
        # Selecting the bottom of the diamond keeps everything above it.
        assert select_graph(tree, "*/example-app:*") == graph
        only_base = select_graph(tree, "*/example-base:*")
        assert [n.key for n in only_base.nodes] == [base, "example-base"]

    def test_same_output_whatever_order_folders_are_copied_in(self, tmp_path: Path) -> None:
        source = ROOT / "examples" / "tree"
        config = read_config(str(ROOT / "examples" / "config.yaml"), {}).config
        outputs = set()
        for attempt, reverse in enumerate([False, True]):
            tree_dir = tmp_path / str(attempt)
            tree_dir.mkdir()
            for folder in sorted(source.iterdir(), reverse=reverse):
                shutil.copytree(folder, tree_dir / folder.name)
            tree = load_tree(read_snapshot(str(tree_dir)), config, render=False)
            outputs.add(
                render_graph(tree, GraphFormat.MERMAID) + render_graph(tree, GraphFormat.DOT)
            )
        assert len(outputs) == 1

    def test_awkward_names_get_distinct_mermaid_ids(self, tmp_path: Path) -> None:
        write_tree(tmp_path, {"a-b": ("1.0", []), "a.b": ("1.0", []), "end": ("1.0", [])})
        config = read_config(str(tmp_path / "config.yaml"), {}).config
        tree = load_tree(read_snapshot(str(tmp_path / "images")), config)
        text = render_graph(tree, GraphFormat.MERMAID)
        assert text.splitlines()[2:] == [
            '  i_a_b["a-b:1.0"]',
            '  i_a_b_2["a.b:1.0"]',
            '  i_end["end:1.0"]',
        ]

    def test_quotes_in_labels_are_escaped(self) -> None:
        from dockerpkg.core.graph_render import Graph, to_dot

        graph = Graph(nodes=(Node(key='odd"\\label', label='odd"\\label', base=True),), edges=())
        assert '"base odd\\"\\\\label" [label="odd\\"\\\\label", style=dashed];' in to_dot(graph)
        assert 'b_odd_label(["odd#quot;\\label"])' in to_mermaid(graph)


def test_bad_tree_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tree(tmp_path, {"a": ("1.0", ["ghost"])})
    status, out, err = run(
        ["-c", str(tmp_path / "config.yaml"), "graph", str(tmp_path / "images")], capsys
    )
    assert status == 1
    assert out == ""
    assert "a/Dockerfile.template: error: image_tag: unknown image 'ghost'" in err
    assert "Traceback" not in err
