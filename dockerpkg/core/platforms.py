"""Platforms (`linux/arm64`): the value, its spellings, and the names dockerpkg gives an
image's build for one platform.

A tree with `platforms` builds each image once per platform, as an image of its own named
`NAME:SUFFIX` (`php:arm64`), tagged `TAG-SUFFIX` (`1.0-arm64`) in the image's own repository;
the image's version tag then holds an image index listing every platform's manifest. The
suffix is the architecture and variant (`arm64`, `armv7`), with the OS in front where it is
not Linux (`windows-amd64`), as registries name per-architecture tags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

# The spellings uname, Debian and Go use for one architecture, as OCI names it
# (containerd's normalisation); `arm64/v8` is plain arm64.
_ARCHITECTURES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i686": "386",
}
_DEFAULT_VARIANT = {"arm": "v7"}
_NAME = re.compile(r"[a-z0-9][a-z0-9_]*\Z")
# Longer names than any OCI platform's part: a bound, so a platform tag stays a valid tag.
MAX_PART = 32


@attrs.frozen(cache_hash=True)  # keys of maps throughout a run
class Platform:
    """An OS, an architecture and, for some architectures, a variant (OCI's names)."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """The platform TEXT spells (`linux/arm64`, `linux/arm/v7`, `linux/aarch64`);
        ValueError saying what is wrong otherwise."""
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(_NAME.match(p) for p in parts):
            raise ValueError(f"platform {text!r} is not OS/ARCHITECTURE[/VARIANT]")
        if any(len(p) > MAX_PART for p in parts):
            raise ValueError(f"platform {text!r} has a part over {MAX_PART} characters")
        os, architecture = parts[0], _ARCHITECTURES.get(parts[1], parts[1])
        variant = parts[2] if len(parts) == 3 else _DEFAULT_VARIANT.get(architecture)
        if architecture == "arm64" and variant == "v8":
            variant = None
        return cls(os, architecture, variant)

    @classmethod
    def of_image(cls, os: str, architecture: str, variant: str | None) -> Platform:
        """The platform an image's config records (its `Os`, `Architecture`, `Variant`)."""
        parts = [os or "linux", architecture or "unknown"] + ([variant] if variant else [])
        return cls.parse("/".join(parts))

    def __str__(self) -> str:
        tail = f"/{self.variant}" if self.variant else ""
        return f"{self.os}/{self.architecture}{tail}"

    @property
    def suffix(self) -> str:
        """The platform in an image's name and tag: `arm64`, `armv7`, `windows-amd64`."""
        arch = self.architecture + (self.variant or "")
        return arch if self.os == "linux" else f"{self.os}-{arch}"

    def variables(self) -> dict[str, str]:
        """What a template rendered for this platform is given, as BuildKit's TARGET*
        build arguments name it: `platform`, `os`, `arch`, `variant` ("" for none)."""
        return {
            "platform": str(self),
            "os": self.os,
            "arch": self.architecture,
            "variant": self.variant or "",
        }


def platform_name(name: str, platform: Platform) -> str:
    """The name of image NAME's build for PLATFORM within a plan: `php:arm64`."""
    return f"{name}:{platform.suffix}"


def platform_tag(tag: str, platform: Platform) -> str:
    """The tag of an image's build for PLATFORM, in the image's repository: `1.0-arm64`."""
    return f"{tag}-{platform.suffix}"


# A FROM instruction: its options, the image, and the rest (`AS stage`).
FROM_LINE = re.compile(
    r"^(?P<head>\s*FROM\s+(?:--\S+\s+)*)(?P<image>\S+)(?P<rest>.*)$", re.IGNORECASE
)
# Other places a Dockerfile names an image: `COPY --from=IMAGE` (and ADD), and a RUN
# mount's `from=IMAGE` (`--mount=type=bind,from=IMAGE,...`).
_OPTION_FROM = re.compile(r"(?P<head>--from=)(?P<image>[^\s]+)", re.IGNORECASE)
_MOUNT_FROM = re.compile(r"(?P<head>--mount=\S*?(?<=[=,])from=)(?P<image>[^,\s]+)", re.IGNORECASE)


def rewrite_froms(dockerfile: str, references: Mapping[str, str]) -> str:
    """DOCKERFILE with each image a key of REFERENCES names (in a FROM line, `COPY --from=`
    or a RUN mount's `from=`) naming its value instead (a parent's or base's reference for
    one platform), so no instruction of a platform's build reads a shared local tag."""
    if not references:
        return dockerfile

    def swap(match: re.Match[str]) -> str:
        image = match["image"]
        return match["head"] + references.get(image, image)

    lines = []
    for line in dockerfile.split("\n"):
        match = FROM_LINE.match(line)
        if match is not None and match["image"] in references:
            lines.append(match["head"] + references[match["image"]] + match["rest"])
        elif "from=" in line.lower():
            lines.append(_MOUNT_FROM.sub(swap, _OPTION_FROM.sub(swap, line)))
        else:
            lines.append(line)
    return "\n".join(lines)
