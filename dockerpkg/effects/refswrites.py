"""Write the edits of a refs plan into the files that use the tree's images (and, for
`update --refs`, the changelog entries with them), every file or none, through the
file-transaction engine (dockerpkg.effects.filetx); and finish what an interrupted write left.

What is refs' own: each file must still have the digest the plan read, and its edits must be
ones refs derives itself (a journal or a saved plan is a claim); the journal,
`.dockerpkg-refs.journal` in the tree's folder, lists each file's real path, its digests
before and after, and its edits; each new text is staged under a name of its own beside its
file (another run may be staging the same file).

A SIGKILL or a crash during the swap leaves some files edited and others not, each whole.
The next refs run finds the journal, says so and finishes the job (`finish_interrupted`):
each file still as it was before gets its edits, each one already written is left, and one
changed by somebody else since is an error that names it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Sequence

import attrs

from dockerpkg.core.editmatch import EditRules, entry_problem, reference_edits_problem, with_entries
from dockerpkg.core.planjson import MAX_PLAN_BYTES, loads
from dockerpkg.core.refsplan import ImageUse, file_digest, with_spans
from dockerpkg.effects import filetx
from dockerpkg.effects.filetx import Writer, write_new_file
from dockerpkg.effects.workfiles import REFS_JOURNAL, REFS_JOURNAL_TEMP
from dockerpkg.errors import DockerPkgError, Problem, error

_ENCODING = ("utf-8", "surrogateescape")  # any bytes round-trip unchanged


OUTSIDE = (
    "outside the tree and the folders given on the command line (or in the config's refs: "
    "paths): refs edits files there only"
)


@attrs.frozen
class FileEdit:
    """One file's edits: where it is, as shown and on disk, and its digest when planned."""

    shown: str
    real: str
    digest: str
    edits: tuple[tuple[int, int, str], ...]  # (start, end, replacement) in its text


def file_edits(uses: Sequence[ImageUse], digests: dict[str, str], base: str) -> list[FileEdit]:
    """The edits of USES grouped by file; DIGESTS: each file's digest in the plan; paths
    shown relative to BASE (the folder the plan was made in)."""
    by_real: dict[str, tuple[str, set[tuple[int, int, str]]]] = {}
    for use in uses:
        if use.replacement is not None:
            real = os.path.realpath(os.path.join(base, use.path))
            # One file given under two spellings is one file, edited once.
            _, spans = by_real.setdefault(real, (use.path, set()))
            spans.add((use.start, use.end, use.replacement))
    return [
        FileEdit(shown, real, digests[shown], tuple(sorted(spans)))
        for real, (shown, spans) in sorted(by_real.items())
    ]


def new_bytes(original: bytes, edits: Sequence[tuple[int, int, str]]) -> bytes:
    """ORIGINAL with EDITS made (offsets in its text); every other byte as it was."""
    return with_spans(original.decode(*_ENCODING), edits).encode(*_ENCODING)


_WORDING = filetx.Wording(
    stage_failed="cannot write the edited file: {cause}; nothing was changed",
    changed="changed while the edits were written",
    replace_failed="cannot replace the file: {cause}",
    not_restored="these were edited and could not be put back: {files}",
    restored="nothing was changed",
    journal_failed="cannot write the journal: {cause}",
    journal_there="an interrupted refs --apply is not finished; run refs again",
)


def write_edits(
    root: str,
    edits: Sequence[FileEdit],
    within: Sequence[str],
    write: Writer = write_new_file,
    *,
    rules: EditRules,
) -> None:
    """Make EDITS, every file or none; ROOT: the tree's folder, where the journal goes;
    WITHIN: the other folders files may be in (those given on the command line, the config's
    refs: paths); RULES: what the edits must be (see dockerpkg.core.editmatch)."""
    changes = _checked(edits, root, within, rules)
    record = {
        "format": 1,
        "files": [
            {
                "shown": edit.shown,
                "path": edit.real,
                "before": edit.digest,
                "after": file_digest(change.after),
                "staged": change.staged,
                "edits": [list(e) for e in edit.edits],
            }
            for edit, change in zip(edits, changes, strict=True)
        ],
    }
    journal = filetx.Journal(
        os.path.join(root, REFS_JOURNAL), os.path.join(root, REFS_JOURNAL_TEMP), REFS_JOURNAL
    )
    body = (json.dumps(record, indent=1) + "\n").encode()
    filetx.commit(journal, body, changes, _WORDING, write=write)


def _edits_problem(edit: FileEdit, current: bytes, rules: EditRules) -> str | None:
    """What is wrong with EDIT's spans over CURRENT: in one of the tree's changelogs, one entry
    in front (update --refs); anywhere else, each a move of a reference's tag or digest that
    refs derives itself. A plan or journal asking for anything else did not come from
    dockerpkg."""
    text = current.decode(*_ENCODING)
    if edit.real in rules.changelogs:
        if len(edit.edits) != 1 or edit.edits[0][:2] != (0, 0):
            return "an edit of a changelog of the tree that is not one entry in front"
        return entry_problem(edit.edits[0][2], text)
    if any(not 0 <= start < end <= len(text) for start, end, _ in edit.edits):
        return "an edit outside the file"
    return reference_edits_problem(edit.shown, text, edit.edits, rules.facts)


def _checked(
    edits: Sequence[FileEdit], root: str, within: Sequence[str], rules: EditRules
) -> list[filetx.Change]:
    """Each edit as a change of its file, which must be inside ROOT or WITHIN, still have the
    digest the plan read, and be edited only as RULES allow."""
    problems: list[Problem] = []
    changes = []
    seen: set[str] = set()
    for edit in edits:
        current = filetx.read_bytes(edit.real)
        wrong = None if current is None else _edits_problem(edit, current, rules)
        if not _inside(edit.real, [root, *within]):
            problems.append(error(edit.shown, OUTSIDE))
        elif edit.real in seen:
            problems.append(error(edit.shown, "named twice"))
        elif wrong is not None:
            problems.append(error(edit.shown, f"not a plan dockerpkg made: {wrong}"))
        elif current is None:
            problems.append(error(edit.shown, "cannot read the file"))
        elif file_digest(current) != edit.digest:
            problems.append(error(edit.shown, "changed since the plan was made; make a new plan"))
        else:
            folder, name = os.path.split(edit.real)
            # A name of its own: another run may be staging the same file.
            staged = f".{name}.{secrets.token_hex(4)}.dockerpkg-tmp"
            changes.append(
                filetx.Change(
                    shown=edit.shown,
                    path=edit.real,
                    staged=os.path.join(folder, staged),
                    before=current,
                    after=new_bytes(current, edit.edits),
                    mode=os.stat(edit.real).st_mode,
                )
            )
        seen.add(edit.real)
    if problems:
        raise DockerPkgError(problems)
    return changes


def _inside(path: str, folders: Sequence[str]) -> bool:
    real = os.path.realpath(path)
    return any(
        os.path.commonpath([real, os.path.realpath(f)]) == os.path.realpath(f) for f in folders
    )


def finish_interrupted(
    root: str, within: Sequence[str], rules: EditRules, write: Writer = write_new_file
) -> list[str] | None:
    """Finish what an interrupted refs --apply left in ROOT (its journal): the files it was
    writing, as shown, once all are written; None when nothing was left.

    A tree may come from anyone, and its journal must not be a way to write anything else:
    only files inside ROOT or the folders WITHIN (given on this run's command line) are
    written, and only with edits RULES allow (see dockerpkg.core.editmatch; the journal's own
    changelog entries count as the tree's versions). Otherwise nothing is written, and the
    error says how to discard the journal."""
    path = os.path.join(root, REFS_JOURNAL)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(root, REFS_JOURNAL_TEMP))  # no file was touched yet
    files = _journal_files(path)
    if files is None:
        return None
    entries = [span[2] for *_, edits, _ in files for span in edits if span[:2] == (0, 0)]
    rules = attrs.evolve(rules, facts=with_entries(rules.facts, entries))
    pending = []
    for shown, real, before, after, edits, _ in files:
        if not _inside(real, [root, *within]):
            raise _not_finished(path, shown, OUTSIDE)
        current = filetx.read_bytes(real)
        digest = None if current is None else file_digest(current)
        if digest == after:
            continue
        if digest != before:
            raise DockerPkgError.single(
                shown,
                f"an interrupted refs --apply was writing this file, which has changed since: "
                f"put it back or finish its edits by hand, then remove {path}",
            )
        pending.append(FileEdit(shown, real, before, edits))
    try:
        changes = _checked(pending, root, within, rules)
    except DockerPkgError as exc:
        first = exc.problems[0]
        raise _not_finished(path, first.location.path, first.message) from None
    # What the interrupted run staged, if killed before the swap (a claim too: only its own
    # kind of file, where refs may write).
    leftovers = [
        staged
        for *_, staged in files
        if _inside(staged, [root, *within]) and staged.endswith(".dockerpkg-tmp")
    ]
    filetx.recover(path, changes, leftovers, _WORDING, write=write)
    return [shown for shown, *_ in files]


_JournalFile = tuple[str, str, str, str, tuple[tuple[int, int, str], ...], str]


def _journal_files(path: str) -> list[_JournalFile] | None:
    """Each file of the refs journal at PATH: as shown, its real path, its digests before
    and after, its edits and its staged file; None: no journal."""
    try:
        if os.path.getsize(path) > MAX_PLAN_BYTES:
            raise ValueError(f"over {MAX_PLAN_BYTES} bytes")
        with open(path, encoding="utf-8") as handle:
            body = loads(handle.read(), path, "refs journal")
        files = [
            (
                str(f["shown"]),
                str(f["path"]),
                str(f["before"]),
                str(f["after"]),
                tuple((int(a), int(b), str(c)) for a, b, c in f["edits"]),
                str(f.get("staged", "")),
            )
            for f in body["files"]  # type: ignore[index]
        ]
        if any("\x00" in name for file in files for name in (file[0], file[1], file[5])):
            raise ValueError("a path with a NUL character")
        return files
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, DockerPkgError) as exc:
        raise DockerPkgError.single(
            REFS_JOURNAL, f"cannot read the journal of an interrupted refs --apply: {exc}"
        ) from None


def _not_finished(path: str, shown: str, why: str) -> DockerPkgError:
    return DockerPkgError.single(
        REFS_JOURNAL,
        f"not finished: the journal of an interrupted refs --apply asks for what refs would "
        f"not do ({shown}: {why}); nothing was written. If the paths it names are yours, "
        f"give them on the command line; to discard the journal, remove {path} (each file "
        "it names is whole, edited or not)",
    )
