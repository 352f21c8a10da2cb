"""An in-memory Docker daemon and registry behind the executor's ports
(dockerpkg.effects.ports): images as literals, for unit tests of the executor without Docker.

Each call is recorded (`calls`); any call can be told to fail, to hang until the run is
cancelled (or its deadline or transfer timeout passes), or to time out (`fault`). A push
lands in the FakeRegistry the daemon was given, which answers the executor's registry
questions from what it holds (image indexes too), and can be told to fail any of them.

Every image has a platform: a build for a platform makes an image of it (unless `forge`
says otherwise), a pull for a platform takes that platform's image from `remote_platforms`,
and a pull moves the pulled label's tag, as a daemon does.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import attrs

from dockerpkg.core.builders import TLSFiles
from dockerpkg.core.labels import repository_path, split_label
from dockerpkg.core.plan import BuildEngine, PlannedImage
from dockerpkg.effects.buildsession import Sources
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.ports import BuildRequest, StageBuilt
from dockerpkg.effects.registry import RegistryError, RegistryFailure
from dockerpkg.effects.verify import Finished
from dockerpkg.effects.waits import CancelledError, DaemonError, Patience, TimedOutError

__all__ = ["NATIVE", "Built", "FakeDaemon", "FakeRegistry", "Fault", "Manifest", "digest_of"]


def digest_of(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


class Fault(enum.Enum):
    """What a call told to misbehave does."""

    FAIL = "fail"  # raises DaemonError (RegistryError for the registry)
    HANG = "hang"  # waits until cancelled, or until its deadline or timeout passes
    TIME_OUT = "time out"  # raises TimedOutError at once (a wait that ran out)


NATIVE = "linux/amd64"  # the fake daemon's own platform


@attrs.frozen
class Manifest:
    config: str  # the image's ID (its config's digest); an index's: "index"
    labels: Mapping[str, str] = attrs.field(factory=dict)
    platform: str | None = None
    # An image index: platform -> the digest of its manifest in the same repository.
    children: Mapping[str, str] = attrs.field(factory=dict)


class FakeRegistry:
    """A registry's manifests and tags (repository paths, as the executor names them)."""

    def __init__(self, host: str = "registry.example.org", *, deletes: bool = True) -> None:
        self.host = host
        self.deletes = deletes
        self.manifests: dict[tuple[str, str], Manifest] = {}  # (path, digest) -> manifest
        self.tags: dict[tuple[str, str], str] = {}  # (path, tag) -> digest
        self.faults: dict[str, str] = {}  # method -> the error it raises
        self.calls: list[tuple[str, ...]] = []

    def put(self, path: str, tag: str, manifest: Manifest) -> str:
        digest = digest_of(path, manifest.config)
        self.manifests[path, digest] = manifest
        self.tags[path, tag] = digest
        return digest

    def fail(self, method: str, message: str = "answered HTTP 503") -> None:
        self.faults[method] = message

    def _enter(self, method: str, *args: str) -> None:
        self.calls.append((method, *args))
        if method in self.faults:
            raise RegistryError(self.host, RegistryFailure.UNEXPECTED_STATUS, self.faults[method])

    def _digest(self, path: str, reference: str) -> str | None:
        if reference.startswith("sha256:"):
            return reference if (path, reference) in self.manifests else None
        return self.tags.get((path, reference))

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        self._enter("manifest_digest", repository, tag)
        return self._digest(repository, tag)

    def config_digest(self, repository: str, tag: str) -> str | None:
        self._enter("config_digest", repository, tag)
        digest = self._digest(repository, tag)
        return None if digest is None else self.manifests[repository, digest].config

    def copy_tag(self, repository: str, source: str, target: str) -> str | None:
        self._enter("copy_tag", repository, source, target)
        digest = self._digest(repository, source)
        if digest is not None:
            self.tags[repository, target] = digest
        return digest

    def promote(self, staging: str, repository: str, tag: str, digest: str) -> str | None:
        self._enter("promote", staging, repository, tag, digest)
        manifest = self.manifests.get((staging, digest))
        if manifest is None:
            return None
        self.manifests[repository, digest] = manifest
        self.tags[repository, tag] = digest
        return digest

    def delete_manifest(self, repository: str, digest: str) -> str | None:
        self._enter("delete_manifest", repository, digest)
        if not self.deletes:
            return "the registry answered 405 to deleting it"
        self.manifests.pop((repository, digest), None)
        for key in [k for k, held in self.tags.items() if k[0] == repository and held == digest]:
            del self.tags[key]
        return None

    def image_labels(self, repository: str, tag: str) -> dict[str, str] | None:
        self._enter("image_labels", repository, tag)
        digest = self._digest(repository, tag)
        return None if digest is None else dict(self.manifests[repository, digest].labels)

    def put_index(
        self, repository: str, tags: Sequence[str], children: Sequence[tuple[str, str]]
    ) -> str:
        self._enter("put_index", repository, *tags)
        listed: dict[str, str] = {}
        for platform, reference in children:
            digest = self._digest(repository, reference)
            if digest is None:
                raise RegistryError(
                    self.host,
                    RegistryFailure.UNEXPECTED_STATUS,
                    f"registry {self.host} has no {repository}:{reference} for {platform}",
                )
            listed[platform] = digest
        index = Manifest("index", children=listed)
        digest = digest_of(repository, "index", *(f"{p}={d}" for p, d in listed.items()))
        self.manifests[repository, digest] = index
        for tag in tags:
            self.tags[repository, tag] = digest
        return digest

    def promote_index(
        self,
        staging: str,
        repository: str,
        tags: Sequence[str],
        children: Sequence[tuple[str, str]],
    ) -> str:
        self._enter("promote_index", staging, repository, *tags)
        for platform, digest in children:
            if (repository, digest) in self.manifests:
                continue
            manifest = self.manifests.get((staging, digest))
            if manifest is None:
                raise RegistryError(
                    self.host,
                    RegistryFailure.UNEXPECTED_STATUS,
                    f"registry {self.host} has no {staging}@{digest} for {platform}",
                )
            self.manifests[repository, digest] = manifest  # by digest: no tag moves
        return self.put_index(repository, tags, children)


@attrs.frozen
class Built:
    """One build the daemon was asked for, as it saw it."""

    label: str
    request: BuildRequest
    dockerfile: str  # the Dockerfile of the context, as sent
    files: frozenset[str]  # the context's files, relative
    session: str | None


class FakeDaemon:
    """A daemon holding IMAGES (label -> image ID); REMOTE: what its pulls find (label ->
    image ID), and REGISTRY, where its pushes land (and its pulls look too)."""

    def __init__(
        self,
        images: Mapping[str, str] | None = None,
        *,
        remote: Mapping[str, str] | None = None,
        registry: FakeRegistry | None = None,
    ) -> None:
        self.images: dict[str, str] = dict(images or {})
        self.remote: dict[str, str] = dict(remote or {})
        self.registry = registry
        self.digests: dict[str, tuple[str, ...]] = {}  # label -> its repo digests
        self.platforms: dict[str, str] = {}  # label -> its platform (none: NATIVE)
        # Images a pull took a tag from, still held by ID (-> platform), as a daemon keeps them.
        self.untagged: dict[str, str] = {}
        self.forged: dict[str, str] = {}  # label -> the platform its builds give, whatever asked
        # Label -> platform -> image ID: what a pull for a platform finds.
        self.remote_platforms: dict[str, dict[str, str]] = {}
        self.pulls: list[tuple[str, str | None]] = []  # (label, platform) of every pull
        self.pull_delay = 0.0  # seconds each pull takes
        self.pulling: dict[str, int] = {}  # label -> pulls of it under way
        self.overlapped: set[str] = set()  # labels two pulls of which ran at once
        self.most_at_once = 0  # the most pulls (of any labels) under way at once
        self.labels: dict[str, dict[str, str]] = {}  # image ID -> its labels
        self.faults: dict[tuple[str, str], tuple[Fault, str]] = {}
        self.fault_times: dict[tuple[str, str], int] = {}  # faults that stop after so many
        self.push_delay = 0.0  # seconds each push takes
        self.pushing = 0  # pushes under way
        self.most_pushes_at_once = 0
        self.calls: list[tuple[str, str]] = []
        self.builds: list[Built] = []
        self.verified: list[tuple[tuple[str, ...], dict[str, str]]] = []
        self.exits: dict[str, int] = {}  # label -> its verification's exit status
        self.stage_left: str | None = None
        self.answers = True
        self.hanging = threading.Event()  # set when a call starts hanging
        self.lock = threading.Lock()

    # -- telling it what to do ---------------------------------------------------------------

    def fault(
        self,
        call: str,
        target: str,
        fault: Fault = Fault.FAIL,
        message: str = "",
        *,
        times: int | None = None,
    ) -> None:
        """Make CALL ("pull", "push", "build", "stage", "tag", "inspect", "verify", "list")
        of TARGET (a label; "push" and "tag": REPOSITORY:TAG; "list": "") misbehave; only
        its first TIMES calls when given (a registry that limits, then lets through)."""
        self.faults[call, target] = (fault, message or f"{call} of {target} refused")
        if times is not None:
            self.fault_times[call, target] = times

    def _enter(
        self,
        call: str,
        target: str,
        cancel: threading.Event | None = None,
        until: float | None = None,
    ) -> None:
        with self.lock:
            self.calls.append((call, target))
            found = self.faults.get((call, target))
            if found is None:
                return
            left = self.fault_times.get((call, target))
            if left is not None:
                self.fault_times[call, target] = left - 1
                if left <= 1:
                    del self.faults[call, target], self.fault_times[call, target]
        fault, message = found
        if fault is Fault.FAIL:
            raise DaemonError(message)
        if fault is Fault.TIME_OUT:
            raise TimedOutError(message)
        self.hanging.set()
        _hang(cancel, until, message)

    # -- the port ----------------------------------------------------------------------------

    def build(
        self,
        context: Path,
        label: str,
        request: BuildRequest,
        log: IO[str],
        cancel: threading.Event,
    ) -> str:
        dockerfile = (context / request.dockerfile).read_text(encoding="utf-8")
        files = frozenset(str(p.relative_to(context)) for p in context.rglob("*") if p.is_file())
        with self.lock:
            self.builds.append(Built(label, request, dockerfile, files, request.session))
        self._enter("build", label, cancel, request.deadline)
        log.write(f"building {label}\n")
        image_id = digest_of(label, dockerfile, *sorted(files))
        self.images[label] = image_id
        self.labels[image_id] = dict(request.labels or {})
        self.platforms[label] = self.forged.get(label, request.platform or NATIVE)
        return image_id

    def forge(self, label: str, platform: str) -> None:
        """Make builds of LABEL give images of PLATFORM, whatever they ask (the trap of a
        parent held locally for another platform)."""
        self.forged[label] = platform

    def build_stage(
        self,
        context: Path,
        stage: str,
        artifacts: Path,
        request: BuildRequest,
        *,
        log: IO[str],
        cancel: threading.Event,
    ) -> StageBuilt:
        dockerfile = (context / request.dockerfile).read_text(encoding="utf-8")
        with self.lock:
            self.builds.append(Built(stage, request, dockerfile, frozenset(), None))
        self._enter("stage", stage, cancel)
        log.write(f"building stage {stage}\n")
        (artifacts / "build").mkdir(parents=True)
        (artifacts / "build" / "made-by-stage").write_text(stage, encoding="utf-8")
        return StageBuilt(digest_of(stage, dockerfile), self.stage_left)

    @contextlib.contextmanager
    def session(
        self,
        image: PlannedImage,
        engine: BuildEngine,
        sources: Sources,
        envs: tuple[Mapping[str, str], Mapping[str, str]],
        tls: TLSFiles | None,
        *,
        patience: Patience,
    ) -> Iterator[str | None]:
        needed = image.secrets or image.ssh or image.cache_from
        yield f"session-{image.name}" if needed and engine is BuildEngine.BUILDKIT else None

    def pull(
        self,
        label: str,
        credentials: Credentials | None,
        log: IO[str],
        cancel: threading.Event,
        *,
        timeout: float,
        platform: str | None = None,
    ) -> str | None:
        with self.lock:
            self.pulls.append((label, platform))
            self.pulling[label] = self.pulling.get(label, 0) + 1
            if self.pulling[label] > 1:
                self.overlapped.add(label)
            self.most_at_once = max(self.most_at_once, sum(self.pulling.values()))
        try:
            self._enter("pull", label, cancel, time.monotonic() + timeout)
            time.sleep(self.pull_delay)
            return self._pulled(label, log, platform)
        finally:
            with self.lock:
                self.pulling[label] -= 1

    def _pulled(self, label: str, log: IO[str], platform: str | None) -> str | None:
        found = self.remote.get(label)
        made = NATIVE
        if platform is not None and platform in self.remote_platforms.get(label, {}):
            found, made = self.remote_platforms[label][platform], platform
        if found is None:
            raise DaemonError(f"cannot pull {label}: manifest unknown")
        log.write(f"pulled {label}\n")
        name, _, held = label.partition("@")
        if held:
            # As a daemon does: an image pulled by digest gets no tag, only REPOSITORY@DIGEST.
            self.images[f"{split_label(name)[0]}@{held}"] = found
            self.platforms[f"{split_label(name)[0]}@{held}"] = made
            return held
        if self.images.get(label, found) != found:
            self.untagged[self.images[label]] = self.platforms.get(label, NATIVE)
        self.images[label] = found
        self.platforms[label] = made
        digest = digest_of(label, found)
        self.digests[label] = (digest,)
        return digest

    def push(
        self,
        repository: str,
        tag: str,
        credentials: Credentials | None,
        log: IO[str],
        cancel: threading.Event,
        *,
        timeout: float,
    ) -> str | None:
        label = f"{repository}:{tag}"
        with self.lock:
            self.pushing += 1
            self.most_pushes_at_once = max(self.most_pushes_at_once, self.pushing)
        try:
            self._enter("push", label, cancel, time.monotonic() + timeout)
            time.sleep(self.push_delay)
        finally:
            with self.lock:
                self.pushing -= 1
        image_id = self.images.get(label)
        if image_id is None:
            raise DaemonError(f"push of {label} failed: An image does not exist locally")
        log.write(f"pushed {label}\n")
        if self.registry is None:
            return None
        path = repository_path(repository, self.registry.host)
        platform = self.platforms.get(label, NATIVE)
        return self.registry.put(
            path, tag, Manifest(image_id, self.labels.get(image_id, {}), platform)
        )

    def tag(self, source: str, repository: str, tag: str) -> None:
        self._enter("tag", f"{repository}:{tag}")
        image_id = self.images.get(source)
        platform = self.platforms.get(source, NATIVE)
        holder = next((label for label, held in self.images.items() if held == source), None)
        if image_id is None and holder is not None:
            # As a daemon does, an image is also found by its ID, tagged or not.
            image_id, platform = source, self.platforms.get(holder, NATIVE)
        elif image_id is None and source in self.untagged:
            image_id, platform = source, self.untagged[source]
        if image_id is None:
            raise DaemonError(f"cannot tag {source} as {repository}:{tag}: No such image")
        self.images[f"{repository}:{tag}"] = image_id
        self.platforms[f"{repository}:{tag}"] = platform

    def image_id(self, label: str) -> str:
        self._enter("inspect", label)
        if label not in self.images:
            raise DaemonError(f"cannot inspect {label}: No such image")
        return self.images[label]

    def image_platform(self, label: str) -> str:
        self._enter("inspect", label)
        if label not in self.images:
            raise DaemonError(f"cannot inspect {label}: No such image")
        return self.platforms.get(label, NATIVE)

    def repo_digests(self, label: str) -> tuple[str, ...]:
        self._enter("inspect", label)
        if label not in self.images:
            raise DaemonError(f"cannot inspect {label}: No such image")
        return self.digests.get(label, ())

    def local_labels(self) -> frozenset[str]:
        self._enter("list", "")
        return frozenset(label for label in self.images if "@" not in label)

    def reachable(self) -> bool:
        return self.answers

    def verify(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: IO[str],
        cancel: threading.Event,
        timeout: float | None,
    ) -> Finished:
        with self.lock:
            self.verified.append((tuple(argv), dict(env)))
        label = next((lb for lb in self.exits if any(lb in word for word in argv)), "")
        target = next(
            (t for c, t in self.faults if c == "verify" and any(t in w for w in argv)), ""
        )
        until = None if timeout is None else time.monotonic() + timeout
        try:
            self._enter("verify", target, cancel, until)
        except CancelledError:
            return Finished(None, cancelled=True)
        except TimedOutError:
            return Finished(None, timed_out=True)
        log.write(f"verified {' '.join(argv)}\n")
        return Finished(self.exits.get(label, 0))


def _hang(cancel: threading.Event | None, until: float | None, message: str) -> None:
    """Wait until CANCEL is set (CancelledError) or UNTIL passes (TimedOutError)."""
    while True:
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled")
        if until is not None and time.monotonic() >= until:
            raise TimedOutError(message)
        time.sleep(0.01)
