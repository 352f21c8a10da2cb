"""Rules of a run: how an image is verified, whether its test is there, and whether a local
copy stands in for a failed pull. The plan decides with them (dockerpkg.core.stepchoices) what
each step's run follows; the executor only looks and does what the plan says."""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Collection, Mapping

import attrs

from dockerpkg.core.config import Config, proxy_args

# What a verification inherits of the run's environment besides PATH: it usually runs
# docker itself, which must reach the daemon the image was built on.
_INHERITED = ("DOCKER_HOST", "DOCKER_CONFIG", "HOME")
_DEFAULT_PATH = "/usr/bin:/bin"


@attrs.frozen
class Verification:
    """How to verify one image: ARGV run with ENV."""

    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict)


def _path_words(config: Config) -> list[str]:
    return [token for arg in config.verify_args for token in shlex.split(arg) if "{path}" in token]


def verification_call(
    config: Config,
    label: str,
    folder: str,
    envs: tuple[Mapping[str, str], Mapping[str, str]],
    platform: str | None = None,
) -> Verification:
    """The verification of LABEL, run (the plan found its test; an image without one is
    skipped, as docker-pkg does: see `missing_test`): FOLDER is the image's folder
    (absolute); ENVS: the run's environment and the builder's (DOCKER_HOST and TLS
    variables, over the run's). PLATFORM: the platform LABEL was built for, told to the
    test as PLATFORM_VARIABLE (a tree with platforms verifies each platform's image)."""
    args = [arg.format(image=label, path=folder) for arg in config.verify_args]
    env, builder_env = envs
    given = {"PATH": env.get("PATH", _DEFAULT_PATH), **proxy_args(config)}
    given.update({key: value for key in _INHERITED if (value := env.get(key))})
    given.update(builder_env)
    if platform is not None:
        given[PLATFORM_VARIABLE] = platform
    return Verification(argv=(config.verify_command, *args), env=given)


# What tells a verification the platform of the image it runs (`linux/arm64`).
PLATFORM_VARIABLE = "DOCKERPKG_PLATFORM"


def log_name(image: str) -> str:
    """The file (in the run's folder) of the log of IMAGE's steps: its name, but a platform
    image's `:` (`php:arm64`), which some file systems and CI artifact stores refuse, is
    `@` (`php@arm64.log`), which no image name holds."""
    return image.replace(":", "@") + ".log"


def local_copy_serves(label: str, local_labels: Collection[str]) -> bool:
    """Whether a failed pull of LABEL may go on with the daemon's own copy: a base image
    made locally (no registry has it) still builds, as with docker-pkg."""
    return label in local_labels


def missing_test(
    config: Config, names: Collection[str], shown: str, found: Collection[str] = frozenset()
) -> str | None:
    """The first file the verification names (the `{path}` words of `verify_args`) that the
    image's folder lacks, as the tree names it (SHOWN: the folder); None when it has them all.
    NAMES: the folder's files, relative ("/"-separated); a word naming a file outside the
    folder (`{path}/../x`) is there when FOUND (see `outside_files`) holds it; any other
    word counts as missing."""
    for token in _path_words(config):
        if not _inside(token, names) and _outside(token, shown) not in found:
            return token.replace("{path}", shown)
    return None


def outside_files(config: Config, shown: str) -> tuple[str, ...]:
    """The files the verification names outside the image's folder SHOWN (as the tree
    names it): its `{path}/..` words, as paths relative to the tree ("/"-separated). The
    tree's snapshot holds only the images' folders: whether these exist is seen on disk
    when planning, and given to `missing_test` as FOUND."""
    return tuple(
        path for token in _path_words(config) if (path := _outside(token, shown)) is not None
    )


def _outside(token: str, shown: str) -> str | None:
    """TOKEN's file relative to the tree when it leads out of the folder SHOWN; else None."""
    rest = posixpath.normpath(token.removeprefix("{path}/"))
    if not token.startswith("{path}/") or "{path}" in rest:
        return None
    if rest != ".." and not rest.startswith("../"):
        return None
    return posixpath.normpath(posixpath.join(shown, rest))


def _inside(token: str, names: Collection[str]) -> bool:
    if token in ("{path}", "{path}/"):
        return True
    if not token.startswith("{path}/"):
        return False
    rest = posixpath.normpath(token.removeprefix("{path}/"))
    if "{path}" in rest or rest == ".." or rest.startswith("../"):
        return False
    if rest == ".":
        return True
    return rest in names or any(name.startswith(rest + "/") for name in names)
