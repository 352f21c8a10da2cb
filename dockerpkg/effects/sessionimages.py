"""What a test session leaves on a daemon, found and removed: the tags carrying its suffix,
and the containers and images carrying its label (the images a check's setup commands
commit inherit their container's labels).

Tags are removed one by one, never image IDs, and without pruning (docker rmi's noprune):
an image goes with its last tag, but the untagged layers beneath it stay, so the classic
builder's cache (its intermediate images) still serves the next session. Removing a tag
only untags an image that has children, or that a container outside the session uses (it
keeps its image, untagged); a refusal is tried again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs
import docker
import docker.errors

from dockerpkg.core.builders import Builder
from dockerpkg.core.testsession import SESSION_LABEL
from dockerpkg.effects.daemon import FAILURES, DaemonError, failure

_PASSES = 5

# What an ImageProbe takes (named here: the api imports nothing of docker-py).
ProbeClient = docker.DockerClient


@attrs.frozen
class Removed:
    """What one removal took off a daemon."""

    tags: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()
    images: tuple[str, ...] = ()  # untagged, labelled: committed by setup commands


def session_tags(client: docker.APIClient, suffix: str) -> list[str]:
    """The daemon's tags whose tag part ends with SUFFIX (a session's), from one listing."""
    try:
        images = client.images()
    except FAILURES as exc:
        raise failure("cannot list images", exc) from None
    return sorted(
        tag
        for image in images
        for tag in image.get("RepoTags") or ()
        if tag.rpartition(":")[2].endswith(suffix)
    )


def remove_session(client: docker.APIClient, session_id: str, suffix: str) -> Removed:
    """Remove the containers labelled with SESSION_ID, then the tags ending with SUFFIX;
    DaemonError when the daemon refuses for good."""
    containers = remove_containers(client, session_id)
    images = remove_labelled_images(client, session_id)
    removed: list[str] = []
    for _ in range(_PASSES):
        tags = session_tags(client, suffix)
        if not tags:
            return Removed(tuple(removed), containers, images)
        removed += _remove_tags(client, tags)
    left = session_tags(client, suffix)
    if left:
        raise DaemonError(f"cannot remove {', '.join(left)}: the daemon keeps refusing")
    return Removed(tuple(removed), containers, images)


def _labelled(client: docker.APIClient, session_id: str) -> list[str]:
    try:
        found = client.images(all=True, filters={"label": f"{SESSION_LABEL}={session_id}"})
    except FAILURES as exc:
        raise failure("cannot list the session's images", exc) from None
    return [str(image["Id"]) for image in found]


def remove_labelled_images(client: docker.APIClient, session_id: str) -> tuple[str, ...]:
    """Remove the images labelled SESSION_ID, by ID, pruning nothing; an image with a
    labelled child (setup commands chain) goes in a later pass."""
    removed: list[str] = []
    for _ in range(_PASSES):
        images = _labelled(client, session_id)
        if not images:
            return tuple(removed)
        removed += _remove_tags(client, images)
    left = _labelled(client, session_id)
    if left:
        raise DaemonError(f"cannot remove the images {', '.join(left)}: the daemon refuses")
    return tuple(removed)


def _remove_tags(client: docker.APIClient, tags: Sequence[str]) -> list[str]:
    removed = []
    for tag in tags:
        try:
            client.remove_image(tag, force=True, noprune=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # removed by another call meanwhile: the next pass
                continue
            raise failure(f"cannot remove {tag}", exc) from None
        except FAILURES as exc:
            raise failure(f"cannot remove {tag}", exc) from None
        removed.append(tag)
    return removed


def remove_containers(client: docker.APIClient, session_id: str) -> tuple[str, ...]:
    """Remove (forced, with their anonymous volumes) the containers labelled SESSION_ID."""
    try:
        found = client.containers(all=True, filters={"label": f"{SESSION_LABEL}={session_id}"})
        for container in found:
            try:
                client.remove_container(container["Id"], force=True, v=True)
            except docker.errors.NotFound:
                continue
    except FAILURES as exc:
        raise failure("cannot remove the session's containers", exc) from None
    return tuple(container["Id"][:12] for container in found)


def clean_sessions(
    builders: Sequence[Builder],
    env: Mapping[str, str],
    session_ids: Sequence[str],
    *,
    tags: bool = True,
) -> dict[str, Removed]:
    """On each daemon (BUILDERS, none: the one ENV names), remove the containers of each of
    SESSION_IDS, their labelled images and, with TAGS, their tags; what was removed, by
    session."""
    from dockerpkg.core.testsession import session_suffix
    from dockerpkg.effects import daemon

    found: dict[str, Removed] = {}
    targets: list[Builder | None] = [*builders] or [None]
    for builder in targets:
        client = daemon.connect(env) if builder is None else daemon.connect_to(builder, env)
        try:
            for session_id in session_ids:
                if tags:
                    removed = remove_session(client, session_id, session_suffix(session_id))
                else:
                    containers = remove_containers(client, session_id)
                    images = remove_labelled_images(client, session_id)
                    removed = Removed(containers=containers, images=images)
                before = found.get(session_id, Removed())
                found[session_id] = Removed(
                    before.tags + removed.tags,
                    before.containers + removed.containers,
                    before.images + removed.images,
                )
        finally:
            client.close()
    return found


def probe_client(builder: Builder | None, env: Mapping[str, str]) -> docker.DockerClient:
    """A high-level client (what an ImageProbe takes) of BUILDER (None: the daemon ENV
    names), reached as builds reach it (TLS files, ssh:// tunnels): DaemonError if none
    answers."""
    from dockerpkg.effects import daemon

    api = daemon.connect(env) if builder is None else daemon.connect_to(builder, env)
    # A DockerClient is a thin shell over its `api`: given an explicit version it connects
    # to nothing when made, and then takes the connected client in place of its own.
    client = docker.DockerClient(version=api.api_version)
    client.api.close()
    client.api = api
    return client
