"""The run's test session (dockerpkg.api.testsession), started by the first item or fixture
that needs a built image: it builds, in one run, every image the run's items want, and is
closed when the run ends, however it ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dockerpkg.api.imagetests import ImageProbe
from dockerpkg.api.testsession import (
    BuildOutcome,
    ImageResult,
    SessionOptions,
    TestSession,
)
from dockerpkg.errors import DockerPkgError, error
from dockerpkg.pytestplugin.settings import Settings


class SessionBuilds:
    """The builds of one pytest run (of one xdist worker: each has its own session)."""

    def __init__(
        self,
        directory: str,
        settings: Settings,
        env: dict[str, str],
        wanted: Callable[[], Sequence[str]],
        unplanned: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        self._directory = directory
        # The images whose render items fail: the plan reads the whole tree, so any of them
        # stops every build of the run.
        self._unplanned = unplanned
        self._options = SessionOptions(
            config_path=settings.config_path,
            env=env,
            pull=settings.pull,
            use_cache=settings.use_cache,
            jobs=settings.jobs,
            keep_images=settings.keep_images,
        )
        self._wanted = wanted
        self._session: TestSession | None = None
        self._probes: dict[str, ImageProbe] = {}
        # A run that could not start (bad input, a registry that does not answer): every
        # item after fails with its message rather than trying again.
        self._refused: DockerPkgError | None = None
        # What the session asks its caller to say (leftovers of dead sessions removed).
        self.warnings: list[str] = []

    def result(self, name: str) -> ImageResult:
        """NAME's build in this run: the first call builds every wanted image not built
        yet, NAME among them, in one run; a parent that failed fails its children."""
        if self._session is None:
            self._session = TestSession(self._directory, self._options)
        known = self._session.result(name)
        if known is not None:
            return known
        if self._refused is not None:
            raise self._refused
        pending = [n for n in self._wanted() if self._session.result(n) is None]
        try:
            results = self._session.build(pending if name in pending else [*pending, name])
        except DockerPkgError as exc:
            self._refused = _named_cause(exc, self._directory, self._unplanned())
            raise self._refused from None
        self.warnings.extend(w for w in self._session.warnings if w not in self.warnings)
        return results[name]

    def probe(self, name: str) -> ImageProbe:
        """A probe of NAME's image (built: see result), made once."""
        if name not in self._probes:
            assert self._session is not None
            self._probes[name] = self._session.probe(name)
        return self._probes[name]

    def close(self) -> None:
        """Remove what the session made (idempotent; nothing if none was started)."""
        if self._session is not None:
            try:
                self._session.close()
            except DockerPkgError as exc:
                # The session keeps its mark: the next one removes what is left.
                self.warnings.append(f"the test session's images were not all removed: {exc}")


def _named_cause(exc: DockerPkgError, directory: str, unplanned: Sequence[str]) -> DockerPkgError:
    """EXC (the run refused) headed by its cause when it is an image that does not render:
    the items of every other image would otherwise fail with that image's message."""
    if not unplanned:
        return exc
    items = ", ".join(f"{name}::render" for name in unplanned)
    head = error(directory, f"the tree does not plan: see {items}")
    return DockerPkgError([head, *exc.problems])


def not_built(result: ImageResult) -> str | None:
    """Why RESULT's image cannot be used, or None when it was built."""
    if result.build is BuildOutcome.BUILT:
        return None
    if result.build is BuildOutcome.PARENT_FAILED:
        return f"parent failed: {result.message}" if result.message else "parent failed"
    if result.build is BuildOutcome.NOT_RUN:
        return f"{result.name} was not built: the run was interrupted"
    return result.message or f"{result.name} failed to build"
