"""The build context BuildKit receives: its first entry must be readable from the first block."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any, cast

import docker.utils

from dockerpkg.effects.imagebuild import _context_archive


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_dockerfile_first_in_a_plain_header(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Dockerfile": "FROM scratch\n",
            "a-file-sorted-before-it": "x",
            "é-non-ascii-name": "y",
            "sub/deep.txt": "z",
        },
    )
    with _context_archive(str(tmp_path), "Dockerfile") as archive:
        data = archive.read()
    # BuildKit parses the first entry out of the body's first kilobyte: no extended header
    # may come before it.
    first = tarfile.TarInfo.frombuf(data[:512], "utf-8", "surrogateescape")
    assert first.name == "Dockerfile"
    assert first.type == tarfile.REGTYPE
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        assert tar.extractfile("sub/deep.txt").read() == b"z"  # type: ignore[union-attr]
    assert names[0] == "Dockerfile"
    assert set(names) == {
        "Dockerfile",
        "a-file-sorted-before-it",
        "é-non-ascii-name",
        "sub",
        "sub/deep.txt",
    }


def test_dockerignore_applies_as_for_classic_builds(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Dockerfile.build": "FROM scratch\n",
            ".dockerignore": "# comment\n*\n!keep.txt\n",
            "keep.txt": "k",
            "drop.txt": "d",
        },
    )
    with (
        _context_archive(str(tmp_path), "Dockerfile.build") as archive,
        tarfile.open(fileobj=archive) as tar,
    ):
        names = tar.getnames()
    assert names == ["Dockerfile.build", ".dockerignore", "keep.txt"]
    # The same files as docker-py's context for a classic build.
    exclude = ["*", "!keep.txt"]
    with (
        cast("Any", docker.utils.tar)(
            str(tmp_path), exclude, dockerfile=("Dockerfile.build", None)
        ) as classic,
        tarfile.open(fileobj=classic) as tar,
    ):
        assert sorted(tar.getnames()) == sorted(names)
