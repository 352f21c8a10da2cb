"""The build context of one image: a private copy of its folder, links followed, checked
against the plan as it is made (see dockerpkg.effects.links for where links may lead)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from dockerpkg.core.bases import short
from dockerpkg.core.definition import sent_definition
from dockerpkg.core.plan import PlannedImage
from dockerpkg.effects import scratch
from dockerpkg.effects.links import Copied, LinkPolicy, context_entries, copy_context
from dockerpkg.effects.tasks import TaskFailedError


@contextlib.contextmanager
def build_context(
    tree: Path, path: str, name: str, links: LinkPolicy, planned: PlannedImage | None = None
) -> Iterator[Path]:
    """A temporary copy of the image folder PATH of TREE, links followed where LINKS allows
    (its private files left out), removed whatever happens.

    The links are checked again on this copy: one made or changed after planning is caught;
    and the copy, hashed as it is made, must be what the PLANNED image's definition covers.
    """
    temp = scratch.make_folder(f"context-{name}")
    try:
        context = Path(temp) / "context"
        entries, refusals = context_entries(str(tree / path), links, skip=links.private)
        if refusals:
            named = [f"{r.name if path == '.' else f'{path}/{r.name}'}: {r.why}" for r in refusals]
            raise TaskFailedError("refused to copy into the build context: " + "; ".join(named))
        try:
            context.mkdir()
            copied = copy_context(entries, str(context))
        except OSError as exc:
            raise TaskFailedError(f"cannot copy {path} into the build context: {exc}") from None
        if planned is not None:
            _check_context(planned, copied)
        yield context
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _check_context(planned: PlannedImage, copied: Copied) -> None:
    """The build context copied must be the one the plan's definition of the image covers:
    a file edited or a link retargeted since planning would be built under the plan's
    definition label, and the next plan would find nothing to do."""
    if planned.own_definition is None:
        return
    sent = sent_definition(planned, copied.hashes, copied.dockerignore)
    if sent != planned.own_definition:
        where = "the tree's folder" if planned.path == "." else planned.path
        raise TaskFailedError(
            f"the build context is not the one planned: the files of {where} changed after "
            f"planning (a file edited, or a link retargeted); its definition is now "
            f"{short(sent)}, the plan's {short(planned.own_definition)}; nothing was built: "
            "plan again (a new run builds what the tree holds then)"
        )
