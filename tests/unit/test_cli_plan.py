"""`dockerpkg plan --offline`: golden text and JSON, determinism, and located errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from dockerpkg.cli import main
from tests.support.compat import COMPAT
from tests.support.golden import check_golden

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(args)
    out, err = capsys.readouterr()
    return status, out, err


class TestGoldenPlans:
    """Plans of the bundled trees match reviewed golden files."""

    @pytest.mark.parametrize("fmt", ["text", "json"])
    def test_example_tree(
        self, fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(ROOT)
        args = ["-c", "examples/config.yaml", "plan", "--offline", "examples/tree"]
        status, out, _ = run([*args, "--json"] if fmt == "json" else args, capsys)
        assert status == 0
        check_golden(f"plans/example-offline.{'json' if fmt == 'json' else 'txt'}", out)

    @pytest.mark.parametrize(
        "case", ["01-image-tag", "11-versions", "07-upstream-version", "16-shared-links"]
    )
    def test_compat_case(
        self, case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(COMPAT / case)
        status, out, _ = run(["plan", "--offline", "--json", "images"], capsys)
        assert status == 0
        check_golden(f"plans/{case}.json", out)

    def test_select_brings_unbuilt_dependencies(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(COMPAT / "11-versions")
        status, out, _ = run(["plan", "--offline", "--select", "*/dated:*", "images"], capsys)
        assert status == 0
        builds = [line.split()[1] for line in out.splitlines() if line.startswith("build")]
        assert builds == ["native", "security", "dated"]


class TestDeterminism:
    """The JSON does not depend on the order the filesystem lists folders in."""

    def test_same_json_from_copies_made_in_other_orders(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        source = COMPAT / "11-versions" / "images"
        outputs = []
        orders: list[Callable[[list[Path]], list[Path]]] = [
            sorted,
            lambda xs: sorted(xs, reverse=True),
        ]
        for attempt, order in enumerate(orders):
            tree = tmp_path / f"t{attempt}" / "images"
            tree.mkdir(parents=True)
            for folder in order(list(source.iterdir())):
                shutil.copytree(folder, tree / folder.name)
            shutil.copy(COMPAT / "11-versions" / "config.yaml", tree.parent / "config.yaml")
            monkeypatch.chdir(tree.parent)
            status, out, _ = run(["plan", "--offline", "--json", "images"], capsys)
            assert status == 0
            outputs.append(out)
        assert outputs[0] == outputs[1]
        data = json.loads(outputs[0])
        assert [i["path"] for i in data["images"]] == sorted(i["path"] for i in data["images"])


def write_image(
    root: Path, folder: str, name: str, template: str, control: str | None = None
) -> None:
    path = root / folder
    path.mkdir(parents=True)
    (path / "Dockerfile.template").write_text(template)
    (path / "changelog").write_text(
        f"{name} (1.0) wikimedia; urgency=medium\n\n  * x\n\n"
        " -- A <a@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n"
    )
    if control is not None:
        (path / "control").write_text(control)


class TestErrors:
    """All problems in one run, as `path[:line]: error: message`, exit 1, no traceback."""

    def test_every_problem_reported(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write_image(tmp_path, "one", "dup", "FROM scratch")
        write_image(tmp_path, "two", "dup", "FROM scratch")
        write_image(tmp_path, "three", "three", "FROM scratch\n{{ nope }}")
        write_image(tmp_path, "four", "four", "FROM scratch", "Package: four\nDepends: ghost\n")
        monkeypatch.chdir(tmp_path)
        (tmp_path / "config.yaml").write_text("")
        status, out, err = run(["plan", "--offline", "."], capsys)
        assert status == 1
        assert out == ""
        assert "Traceback" not in err
        lines = err.splitlines()
        assert "two/changelog:1: error: image 'dup' is also defined in one/changelog" in err
        assert (
            "three/Dockerfile.template:2: error: undefined variable: 'nope' is undefined" in lines
        )
        assert (
            "four/control:2: error: image 'four' depends on 'ghost', which is neither in the tree "
            "nor in base_images" in lines
        )

    def test_bad_changelog(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write_image(tmp_path, "x", "x", "FROM scratch")
        (tmp_path / "x" / "changelog").write_text("this is not a changelog\n")
        monkeypatch.chdir(tmp_path)
        (tmp_path / "config.yaml").write_text("")
        status, _, err = run(["plan", "--offline", "."], capsys)
        assert status == 1
        assert err.startswith("x/changelog:1: error: cannot parse changelog")

    def test_bad_config_value(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "c.yaml").write_text("registry: r\nscan_workers: lots\n")
        status, _, err = run(["-c", "c.yaml", "plan", "--offline", "."], capsys)
        assert status == 1
        assert err.startswith("c.yaml:2: error: bad value for 'scan_workers'")

    def test_empty_selection_is_not_an_error(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(COMPAT / "01-image-tag")
        status, out, _ = run(["plan", "--offline", "--select", "nothing*", "images"], capsys)
        assert status == 0
        assert "no image matches --select nothing*" in out
        assert out.endswith("Plan: nothing to do.\n")


class TestNightly:
    """--nightly appends today's date (the clock is read by the CLI) to every tree image."""

    def test_suffix_reaches_labels_and_image_tag(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(COMPAT / "01-image-tag")
        status, out, _ = run(["plan", "--offline", "--json", "--nightly", "images"], capsys)
        assert status == 0
        data = json.loads(out)
        app = next(i for i in data["images"] if i["name"] == "app")
        assert app["tag"].startswith("2.3-2")
        assert app["dockerfile"].startswith("FROM registry.example.org/team/base:1.0.0-1-2")
        assert data["options"]["suffix"] == app["tag"][len("2.3") :]
