"""Build a tree's images for a test session (a pytest run), through the same planner and
scheduler as `build`, and remove what the session made when it ends.

A session differs from `build` in three things only: it asks for images by name (with the
parents they need), it publishes nothing, and every version carries its suffix
(`-pytest-ID`), so its tags are its own and its children are built FROM its parents. See
docs/testing.md, "How a session builds".
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import attrs

from dockerpkg.api.build import PlannedRun, apply_run
from dockerpkg.api.run import PlanRequest, apply_options, plan_run
from dockerpkg.api.sessionsignals import TermAsInterrupt, stopping_on_signals
from dockerpkg.api.workspace import run_gates
from dockerpkg.core.builders import Builder
from dockerpkg.core.report import Report
from dockerpkg.core.testsession import (
    SESSION_LABEL,
    BuildOutcome,
    ImageResult,
    VerifyOutcome,
    image_results,
    session_suffix,
)
from dockerpkg.effects.progress import LineProgress
from dockerpkg.effects.sessionmarks import dead_marks, marks_folder, take_mark
from dockerpkg.effects.tasks import Listener
from dockerpkg.errors import DockerPkgError

if TYPE_CHECKING:
    from dockerpkg.effects.imageprobe import ImageProbe
    from dockerpkg.effects.registry.gate import RegistryGates
    from dockerpkg.effects.sessionimages import ProbeClient, Removed

__all__ = [
    "BuildOutcome",
    "ImageResult",
    "SessionOptions",
    "TestSession",
    "VerifyOutcome",
]

# How many lines of a failed image's log its message ends with.
TAIL_LINES = 20


@attrs.frozen
class SessionOptions:
    """What a session is asked: the config (None: the usual places), the run's environment
    (read once by the caller), and how it builds: PULL base images as `build` does,
    USE_CACHE (the daemon's layers; on by default: a session rebuilds often), JOBS (None:
    the engine's default), KEEP_IMAGES (close() leaves the tags), RUN_DIR (the per-image
    logs; None: a folder of the session's under the temporary folder)."""

    config_path: str | None
    env: Mapping[str, str]
    pull: bool = True
    use_cache: bool = True
    jobs: int | None = None
    keep_images: bool = False
    run_dir: str | None = None


class TestSession:
    """The builds of one test session of the tree in DIRECTORY; a context manager whose
    exit is close(). `warnings` holds what the caller should print: the leftovers of dead
    sessions that were found and removed (filled by the first build())."""

    __test__ = False  # a library class, not a test pytest should collect

    def __init__(
        self, directory: str, options: SessionOptions, *, marks: str | None = None
    ) -> None:
        self.directory = directory
        self.options = options
        self.id = secrets.token_hex(6)
        self.suffix = session_suffix(self.id)
        self.run_dir = options.run_dir or os.path.join(
            tempfile.gettempdir(), "dockerpkg-runs", f"pytest-{self.id}"
        )
        self.warnings: list[str] = []
        self._results: dict[str, ImageResult] = {}
        self._parents: dict[str, tuple[str, ...]] = {}
        self._labels: dict[str, str] = {}  # the session's tags, by image name
        self._builders: tuple[Builder, ...] | None = None  # None: no plan made yet
        self._marks = marks_folder(marks)
        self._mark = take_mark(self.id, self._marks)
        self._swept = False
        self._closed = False
        self._client: ProbeClient | None = None  # the probes', made on first use
        # The session is one run for the registries it pulls from: every build() waits at
        # the same gates, made from the config by the first one (its plan's, or its own
        # when that plan was offline).
        self._gates: RegistryGates | None = None
        # Last: SIGTERM now unwinds to close() (which restores the handler) wherever it lands.
        self._term = TermAsInterrupt()

    def __enter__(self) -> TestSession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def container_labels(self) -> Mapping[str, str]:
        """The labels every container the session makes carries (close() finds them so)."""
        return {SESSION_LABEL: self.id}

    def build(
        self, names: Iterable[str], *, listener: Listener | None = None
    ) -> Mapping[str, ImageResult]:
        """Build NAMES not built yet in this session, with the parents they need, in ONE
        run, and verify them (test.sh); the results of NAMES and of the parents this run
        built. Names built (or failed) earlier return their earlier result; an image whose
        parent failed earlier is PARENT_FAILED without a run. LISTENER hears of each step
        (default: progress lines in the run folder's progress.log). Ctrl-C or SIGTERM
        during the run stop it as they stop `build` (see sessionsignals), then raise
        KeyboardInterrupt; close() removes what was made either way."""
        if self._closed:
            raise DockerPkgError.single(self.directory, "the test session is closed")
        asked = list(dict.fromkeys(names))
        todo = [n for n in asked if n not in self._results]
        for name in todo:
            failed = self._failed_ancestor(name)
            if failed is not None:
                self._results[name] = self._parent_failed(name, failed)
        todo = [n for n in todo if n not in self._results]
        ran: Mapping[str, ImageResult] = {}
        if todo:
            ran = self._run(tuple(todo), listener)
        return {**{n: self._results[n] for n in asked}, **ran}

    def result(self, name: str) -> ImageResult | None:
        """NAME's result in this session; None: not built (nor asked) yet."""
        return self._results.get(name)

    def probe(self, name: str) -> ImageProbe:
        """An ImageProbe of NAME's session image (built by build()), on the daemon it was
        built on; its containers carry the session's labels, so close() removes them."""
        from dockerpkg.effects.imageprobe import ImageProbe  # loads docker-py

        result = self._results.get(name)
        if result is None or result.build is not BuildOutcome.BUILT:
            why = "is not built yet" if result is None else f"was not built: {result.message}"
            raise DockerPkgError.single(self.directory, f"image {name} {why}")
        if self._client is None:
            from dockerpkg.effects.daemon import DaemonError
            from dockerpkg.effects.sessionimages import probe_client

            builder = self._builders[0] if self._builders else None
            try:
                self._client = probe_client(builder, self.options.env)
            except DaemonError as exc:
                raise DockerPkgError.single("docker", str(exc)) from None
        return ImageProbe(self._client, result.label, labels=self.container_labels)

    def close(self) -> None:
        """Remove every container, committed image and tag the session made (the tags too
        unless keep_images), even after a failed or interrupted run. Idempotent. The session's
        mark goes last: a close killed half-way leaves it, and the next session finishes."""
        if self._closed:
            return
        try:
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._builders is not None:
                self._clean([self.id], tags=not self.options.keep_images)
            self._mark.release(forget=True)
            self._closed = True
        finally:
            # After the removal: a SIGTERM during it interrupts it, and a later close() resumes.
            self._term.restore()

    # --- the run -------------------------------------------------------------------------

    def _run(self, names: tuple[str, ...], listener: Listener | None) -> dict[str, ImageResult]:
        request = PlanRequest(
            env=self.options.env,
            config_path=self.options.config_path,
            names=names,
            no_publish=True,
            ask_registry=False,
            suffix=self.suffix,
            pull=self.options.pull,
            use_cache=self.options.use_cache,
        )
        planned = plan_run(self.directory, request, gates=self._gates)
        if planned.gates is None:
            # An offline plan makes none: the session's first run makes them, once.
            planned = attrs.evolve(planned, gates=run_gates(planned.workspace.config))
        self._gates = planned.gates
        self._builders = tuple(planned.workspace.builders.builders)
        self._parents = {i.name: i.parents for i in planned.plan.images}
        self._labels = {i.name: i.label for i in planned.plan.images}
        self._sweep()
        report = self._apply(planned, listener) if planned.plan.steps else Report(())
        results = image_results(planned.plan, report, names, self.run_dir)
        results = {name: _with_tail(result) for name, result in results.items()}
        self._results.update(results)
        if report.interrupted:
            raise KeyboardInterrupt
        return results

    def _apply(self, planned: PlannedRun, listener: Listener | None) -> Report:
        options = apply_options(planned, run_dir=self.run_dir, jobs=self.options.jobs)
        os.makedirs(self.run_dir, exist_ok=True)
        with contextlib.ExitStack() as stack:
            if listener is None:
                stream = stack.enter_context(
                    open(os.path.join(self.run_dir, "progress.log"), "a", encoding="utf-8")
                )
                listener = LineProgress(stream, total=len(planned.plan.steps))
            interrupt = stack.enter_context(stopping_on_signals())
            return apply_run(planned, options, listener, interrupt=interrupt)

    def _failed_ancestor(self, name: str) -> str | None:
        """A parent (or grandparent ...) of NAME this session failed to build, if any."""
        seen: set[str] = set()
        todo = list(self._parents.get(name, ()))
        while todo:
            parent = todo.pop()
            if parent in seen:
                continue
            seen.add(parent)
            earlier = self._results.get(parent)
            if earlier is not None and earlier.build is not BuildOutcome.BUILT:
                return parent
            todo.extend(self._parents.get(parent, ()))
        return None

    def _parent_failed(self, name: str, parent: str) -> ImageResult:
        return ImageResult(
            name,
            self._labels.get(name, ""),
            BuildOutcome.PARENT_FAILED,
            VerifyOutcome.NOT_RUN,
            f"not built: parent image {parent} was not built",
        )

    # --- what the session leaves ---------------------------------------------------------

    def _sweep(self) -> None:
        """Once, on the daemon(s) of the first run: remove what dead sessions left."""
        if self._swept:
            return
        self._swept = True
        dead = dead_marks(self._marks, but=self.id)
        if not dead:
            return
        ids = [mark.session_id for mark in dead]
        try:
            removed = self._clean(ids, tags=True)
        except BaseException as exc:
            for mark in dead:
                mark.release(forget=False)  # still dead: the next session tries again
            if not isinstance(exc, DockerPkgError):
                raise
            # Never fatal: this session's own builds do not depend on the dead ones' leftovers.
            self.warnings.append(
                f"could not remove what test sessions {', '.join(ids)} left (they were "
                f"killed); the next session tries again: {exc}"
            )
            return
        for mark in dead:
            mark.release(forget=True)
            gone = removed[mark.session_id]
            self.warnings.append(
                f"removed what test session {mark.session_id} left (it was killed): "
                + (", ".join(gone.tags) if gone.tags else "no tags")
                + (f", {len(gone.images)} committed image(s)" if gone.images else "")
            )

    def _clean(self, session_ids: list[str], *, tags: bool) -> dict[str, Removed]:
        """Remove the containers (and, with TAGS, the tags) of SESSION_IDS on the daemons
        the session builds on; a daemon's failure is a DockerPkgError."""
        # docker-py is loaded only by sessions that build.
        from dockerpkg.effects.daemon import DaemonError
        from dockerpkg.effects.sessionimages import clean_sessions

        try:
            return clean_sessions(self._builders or (), self.options.env, session_ids, tags=tags)
        except DaemonError as exc:
            raise DockerPkgError.single("docker", str(exc)) from None


def _with_tail(result: ImageResult) -> ImageResult:
    """RESULT with the tail of its log after the message, when it failed."""
    failed = result.build is BuildOutcome.FAILED or result.verify is VerifyOutcome.FAILED
    if not failed or result.log is None:
        return result
    tail = "\n".join(_tail(result.log))
    if not tail:
        return result
    return attrs.evolve(result, message=f"{result.message}\n--- end of {result.log} ---\n{tail}")


def _tail(path: str) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return iter(())
    return iter(lines[-TAIL_LINES:])
