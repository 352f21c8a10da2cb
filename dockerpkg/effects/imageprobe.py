"""Look into a built image on the daemon: run a command in a throwaway container, read a
file or a path's entry, read the image's config. Every container it makes carries the
caller's labels (so a session can find its own) and is removed when the call ends, also on
an error or a timeout."""

from __future__ import annotations

import io
import posixpath
import tarfile
import types
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, cast

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container

from dockerpkg.core.structure_facts import (
    FileKind,
    FileStat,
    ImageConfig,
    RunResult,
    env_mapping,
)

_NO_LABELS: Mapping[str, str] = types.MappingProxyType({})
# A created container needs a command; it is never started.
_NEVER_RUN = ["/dockerpkg-probe-never-run"]
# Linux's own limit of symlinks followed in one lookup.
_MAX_LINKS = 40

_KINDS = {
    tarfile.REGTYPE: FileKind.FILE,
    tarfile.AREGTYPE: FileKind.FILE,
    tarfile.DIRTYPE: FileKind.DIRECTORY,
    tarfile.SYMTYPE: FileKind.SYMLINK,
    tarfile.LNKTYPE: FileKind.HARDLINK,
    tarfile.CHRTYPE: FileKind.CHAR_DEVICE,
    tarfile.BLKTYPE: FileKind.BLOCK_DEVICE,
    tarfile.FIFOTYPE: FileKind.FIFO,
}


class ProbeError(Exception):
    """The daemon could not do what the probe asked (the command could not start, the
    image is gone, a run took longer than its timeout); the message says what."""


class ImageProbe:
    """IMAGE (a reference or an id) on the daemon CLIENT talks to."""

    def __init__(
        self, client: docker.DockerClient, image: str, *, labels: Mapping[str, str] = _NO_LABELS
    ) -> None:
        self.client = client
        self.image = image
        self.labels = dict(labels)

    @property
    def digest(self) -> str:
        """The image's id (`sha256:...`)."""
        return str(self._inspect()["Id"])

    def run(
        self,
        command: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> RunResult:
        """Run COMMAND (no shell, the image's entrypoint not used) with ENV added to the
        image's environment; ProbeError if it cannot start or outlives TIMEOUT seconds."""
        with self._container(list(command), env) as container:
            try:
                container.start()
                status = container.wait(timeout=timeout)
            except docker.errors.APIError as exc:
                raise ProbeError(f"cannot run {list(command)}: {_explain(exc)}") from None
            except requests.exceptions.RequestException:
                # Over the unix socket, a read timeout comes as a ConnectionError.
                if timeout is None:
                    raise ProbeError(f"lost the daemon while running {list(command)}") from None
                raise ProbeError(f"{list(command)} did not end within {timeout:g} s") from None
            stdout = container.logs(stdout=True, stderr=False)
            stderr = container.logs(stdout=False, stderr=True)
        return RunResult(
            int(status["StatusCode"]),
            stdout.decode("utf-8", "replace"),
            stderr.decode("utf-8", "replace"),
        )

    def stat(self, path: str) -> FileStat | None:
        """PATH's entry (a symlink at its end is not followed); None when there is none."""
        with self._container(_NEVER_RUN, None) as container:
            found = _entry(container, path, read=False)
        return None if found is None else found[0]

    def file(self, path: str) -> bytes | None:
        """The content of the regular file at PATH, symlinks followed; None when there is
        no such file (or it is a folder)."""
        with self._container(_NEVER_RUN, None) as container:
            for _ in range(_MAX_LINKS):
                found = _entry(container, path, read=True)
                if found is None:
                    return None
                stat, content = found
                if stat.kind is not FileKind.SYMLINK or stat.link_target is None:
                    return content
                path = posixpath.join(posixpath.dirname(path), stat.link_target)
        raise ProbeError(f"too many levels of symbolic links at {path}")

    def config(self) -> ImageConfig:
        """The image's config: environment, labels, user, entrypoint, cmd, workdir, exposed
        ports, volumes, architecture."""
        inspected = self._inspect()
        config = inspected.get("Config") or {}
        return ImageConfig(
            env=env_mapping(config.get("Env")),
            labels=config.get("Labels") or {},
            user=config.get("User") or "",
            entrypoint=_optional_tuple(config.get("Entrypoint")),
            cmd=_optional_tuple(config.get("Cmd")),
            workdir=config.get("WorkingDir") or "",
            exposed_ports=tuple(sorted(config.get("ExposedPorts") or {})),
            volumes=tuple(sorted(config.get("Volumes") or {})),
            architecture=inspected.get("Architecture") or "",
        )

    @contextmanager
    def committed(
        self, commands: Sequence[Sequence[str]], env: Mapping[str, str] | None = None
    ) -> Iterator[ImageProbe]:
        """A probe of the image each of COMMANDS (with ENV) ran in, one after the other,
        each run's file system kept (its exit status is not looked at); the images made
        are removed when the block ends."""
        made: list[str] = []
        image = self.image
        try:
            for command in commands:
                with self._container(list(command), env, image) as container:
                    try:
                        container.start()
                        container.wait()
                        image = str(container.commit().id)
                    except docker.errors.APIError as exc:
                        raise ProbeError(f"setup {list(command)}: {_explain(exc)}") from None
                made.append(image)
            yield ImageProbe(self.client, image, labels=self.labels)
        finally:
            # One by one, pruning nothing: the probed image itself may be an untagged parent.
            for made_image in reversed(made):
                with suppress(docker.errors.NotFound):
                    self.client.images.remove(made_image, force=True, noprune=True)

    def _inspect(self) -> dict[str, Any]:
        try:
            return dict(cast("Any", self.client.api).inspect_image(self.image))
        except docker.errors.APIError as exc:
            raise ProbeError(f"cannot inspect {self.image}: {_explain(exc)}") from None

    @contextmanager
    def _container(
        self, command: list[str], env: Mapping[str, str] | None, image: str | None = None
    ) -> Iterator[Container]:
        try:
            container = self.client.containers.create(
                image or self.image,
                command=command,
                # [""] resets the entrypoint ([] would keep the image's).
                entrypoint=[""],
                environment=dict(env) if env else None,
                labels=self.labels,
                detach=True,
            )
        except docker.errors.APIError as exc:
            raise ProbeError(
                f"cannot create a container of {self.image}: {_explain(exc)}"
            ) from None
        try:
            yield container
        finally:
            with suppress(docker.errors.NotFound):
                container.remove(force=True)


def _entry(container: Container, path: str, *, read: bool) -> tuple[FileStat, bytes | None] | None:
    """The first entry of PATH's archive (PATH's own) and, if READ and it is a regular
    file, its content; None when the path does not exist."""
    try:
        chunks, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise ProbeError(f"cannot read {path}: {_explain(exc)}") from None
    # Stream: the archive of a folder holds all it contains, and only its first entry counts.
    try:
        return _first_entry(path, chunks, read=read)
    finally:
        # Let go of the rest of the answer now, not when the collector gets to it.
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _first_entry(
    path: str, chunks: Iterator[bytes], *, read: bool
) -> tuple[FileStat, bytes | None] | None:
    with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as archive:
        member = archive.next()
        if member is None:
            return None
        stat = FileStat(
            path=path,
            kind=_KINDS.get(member.type, FileKind.FILE),
            mode=member.mode & 0o7777,
            uid=member.uid,
            gid=member.gid,
            size=member.size,
            link_target=member.linkname or None,
        )
        content = None
        if read and stat.kind is FileKind.FILE:
            extracted = archive.extractfile(member)
            content = extracted.read() if extracted is not None else None
    return stat, content


class _ChunkReader(io.RawIOBase):
    """A stream of CHUNKS as a file tarfile can read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _optional_tuple(value: list[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)
