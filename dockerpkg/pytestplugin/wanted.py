"""What a run builds: the images whose Docker items, or whose dockerpkg_image parameters,
are among the items left once collected and deselected (-k, -m, --lf)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from dockerpkg.pytestplugin.dockeritems import DockerItem

# The argument a dockerpkg_images marker parametrizes, unless the marker names another.
IMAGE_ARGUMENT = "image_name"
IMAGE_FIXTURE = "dockerpkg_image"


def wanted_images(items: Iterable[pytest.Item]) -> tuple[str, ...]:
    """The images ITEMS build, each once, in the order first met."""
    found: dict[str, None] = {}
    for item in items:
        if isinstance(item, DockerItem) and item.image is not None:
            found[item.image.name] = None
        elif IMAGE_FIXTURE in getattr(item, "fixturenames", ()):
            callspec = getattr(item, "callspec", None)
            marker = item.get_closest_marker("dockerpkg_images")
            argument = marker.kwargs.get("argname", IMAGE_ARGUMENT) if marker else IMAGE_ARGUMENT
            if callspec is not None and argument in callspec.params:
                found[str(callspec.params[argument])] = None
    return tuple(found)
