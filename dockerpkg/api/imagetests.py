"""Structure tests of a built image: read an image folder's `structure-tests.yaml` and run
one of its checks through an `ImageProbe`, with the verdict container-structure-test 1.19.1
gives (docs/structure-tests.md)."""

from __future__ import annotations

import os

from dockerpkg.core.structure import (
    CheckKind,
    CommandSpec,
    FileContentSpec,
    FileExistenceSpec,
    StructureCheck,
    StructureTests,
    Verdict,
)
from dockerpkg.core.structure_facts import FileKind, FileStat, ImageConfig, RunResult
from dockerpkg.core.structure_verdict import (
    FOUND_KINDS,
    command_line,
    command_verdict,
    content_verdict,
    existence_verdict,
    expand,
    link_read_path,
    metadata_verdict,
    run_env,
    setup_env,
)
from dockerpkg.core.structure_yaml import parse_structure_tests
from dockerpkg.effects.imageprobe import ImageProbe, ProbeError
from dockerpkg.errors import DockerPkgError

__all__ = [
    "FILE_NAME",
    "CheckKind",
    "FileStat",
    "ImageConfig",
    "ImageProbe",
    "ProbeError",
    "RunResult",
    "StructureCheck",
    "StructureTests",
    "Verdict",
    "read_structure_tests",
    "run_structure_check",
]

FILE_NAME = "structure-tests.yaml"
# How many symlinks a file content check follows before giving up.
_MAX_LINKS = 40


def read_structure_tests(folder: str) -> StructureTests | None:
    """The checks of FOLDER's `structure-tests.yaml`; None when it has none. A file that
    cannot be read or is wrong is a DockerPkgError naming it (and the line)."""
    path = os.path.join(folder, FILE_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DockerPkgError.single(path, f"cannot read it: {exc}") from None
    return parse_structure_tests(text, path)


def run_structure_check(
    probe: ImageProbe, check: StructureCheck, *, timeout: float | None = None
) -> Verdict:
    """CHECK's verdict on PROBE's image; what the daemon could not do fails the check
    with its reason, as container-structure-test fails it. TIMEOUT bounds a command
    check's command, in seconds (container-structure-test has no bound)."""
    try:
        spec = check.spec
        if isinstance(spec, CommandSpec):
            return _command(probe, spec, timeout)
        if isinstance(spec, FileExistenceSpec):
            path = expand(spec.path, probe.config().env)
            return existence_verdict(spec, probe.stat(path))
        if isinstance(spec, FileContentSpec):
            return _content(probe, spec)
        return metadata_verdict(spec, probe.config())
    except ProbeError as exc:
        return Verdict(False, (str(exc),))


def _command(probe: ImageProbe, spec: CommandSpec, timeout: float | None) -> Verdict:
    if not spec.setup:
        line = command_line(spec, probe.config().env)
        return command_verdict(spec, probe.run(line, run_env(spec), timeout=timeout))
    env = setup_env(spec, probe.config().env)
    # Setup commands run one after the other, each in the image the previous one left;
    # the command then runs in the last one, whose environment has the test's variables.
    with probe.committed(spec.setup, env) as prepared:
        line = command_line(spec, prepared.config().env)
        return command_verdict(spec, prepared.run(line, run_env(spec), timeout=timeout))


def _content(probe: ImageProbe, spec: FileContentSpec) -> Verdict:
    path = spec.path
    for _ in range(_MAX_LINKS):
        stat: FileStat | None = probe.stat(path)
        if stat is None or stat.kind not in FOUND_KINDS:
            return content_verdict(spec, None, f"{path} not found")
        if stat.kind is FileKind.DIRECTORY:
            return content_verdict(spec, None, f"{path} is a folder, not a file")
        if stat.kind is FileKind.SYMLINK and stat.link_target is not None:
            path = link_read_path(stat.link_target)
            continue
        content = probe.file(path)
        text = None if content is None else content.decode("utf-8", "replace")
        return content_verdict(spec, text, f"{path} not found")
    return content_verdict(spec, None, f"too many symbolic links from {spec.path}")
