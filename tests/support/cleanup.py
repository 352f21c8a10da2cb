"""Removing what a test left in the shared daemon, without tripping over parent images."""

from __future__ import annotations

import docker
import docker.errors

PASSES = 5


def tags_under(client: docker.DockerClient, prefix: str) -> list[str]:
    """Tags the daemon holds that start with PREFIX, from one listing (no per-image inspect
    that could race other users of the daemon)."""
    return sorted(
        tag
        for image in client.api.images()
        for tag in image.get("RepoTags") or ()
        if tag.startswith(prefix)
    )


def remove_tags_under(client: docker.DockerClient, prefix: str) -> None:
    """Remove every tag starting with PREFIX; an image goes with its last tag.

    Removal is by tag, never by ID: the daemon refuses to delete an image ID that still has
    child images even when forced, while removing the last tag of such an image only untags
    it and the image goes with its child. A refusal anyway (a child being removed at the same
    time) is retried on the next pass.
    """
    for _ in range(PASSES):
        refused = []
        for tag in tags_under(client, prefix):
            try:
                client.api.remove_image(tag, force=True)
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as error:
                if error.status_code != 409:
                    raise
                refused.append(tag)
        if not refused:
            return
    left = tags_under(client, prefix)
    if left:
        raise AssertionError(f"could not remove {left} from the daemon")
