"""Builders: the Docker hosts a run spreads its builds over, as the config or --builders
name them. Pure values and parsing; connecting is dockerpkg.effects.daemon's job.

No builders given means the one daemon of the environment (DOCKER_HOST or the local socket)
with --jobs slots, as before builders existed. Which builder builds which image is decided
while the run goes (by the scheduler), not by the plan: the plan only records the set.
"""

from __future__ import annotations

import re

import attrs

from dockerpkg.errors import DockerPkgError, Location, error

# What docker-py can reach: a unix socket, TCP (with TLS for anything but a trusted network),
# and SSH (through the `ssh` command, so ~/.ssh/config and agents apply).
SCHEMES = ("unix://", "tcp://", "ssh://")
FLAG = "--builders"

_USERINFO_PASSWORD = re.compile(r"^(?P<scheme>[a-z]+://)(?P<user>[^:/@]*):[^@/]*@")


@attrs.frozen
class TLSFiles:
    """Client certificate and the CA that signed the daemon's certificate (paths)."""

    ca: str
    cert: str
    key: str


@attrs.frozen
class Builder:
    """One Docker host and how many builds it runs at once (None: --jobs)."""

    url: str
    slots: int | None = None
    tls: TLSFiles | None = None
    # The platforms (`linux/arm64`) the config says it builds; empty: not declared.
    platforms: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The URL as shown in plans and reports: never a password, should one be in it."""
        return public_url(self.url)


@attrs.frozen
class BuilderSet:
    """The builders of a run and where they were given (for errors about them)."""

    builders: tuple[Builder, ...] = ()
    origin: Location = attrs.field(factory=lambda: Location("config"))

    @property
    def several(self) -> bool:
        return len(self.builders) > 1


DEFAULT_BUILDERS = BuilderSet()


def public_url(url: str) -> str:
    return _USERINFO_PASSWORD.sub(r"\g<scheme>\g<user>@", url)


def url_problem(url: str) -> str | None:
    """Why URL cannot name a builder, or None."""
    if not url.startswith(SCHEMES):
        return f"{public_url(url)!r} is not a Docker endpoint (unix://, tcp:// or ssh://)"
    if url.rstrip("/") in SCHEMES or url.endswith("://"):
        return f"{public_url(url)!r} names no socket or host"
    return None


def parse_builders_flag(text: str, configured: tuple[Builder, ...] = ()) -> BuilderSet:
    """`URL[=SLOTS],URL[=SLOTS]`: a URL also in CONFIGURED keeps its TLS files and platforms
    from there."""
    tls = {b.url: b.tls for b in configured}
    platforms = {b.url: b.platforms for b in configured}
    builders: list[Builder] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        url, equals, count = item.rpartition("=")
        if not equals or not count.isdigit():
            url, count = item, ""
        why = url_problem(url)
        if why is None and count and int(count) < 1:
            why = f"{public_url(url)}: slots must be 1 or more"
        if why is None and any(b.url == url for b in builders):
            why = f"{public_url(url)} is given twice"
        if why is not None:
            raise DockerPkgError.single(FLAG, why)
        builders.append(
            Builder(url, int(count) if count else None, tls.get(url), platforms.get(url, ()))
        )
    if not builders:
        raise DockerPkgError.single(FLAG, "expected URL[=SLOTS],URL[=SLOTS]...")
    return BuilderSet(tuple(builders), Location(FLAG))


def publishing_required(builders: BuilderSet, where: str) -> DockerPkgError:
    """The refusal of a run over several builders that cannot publish."""
    return DockerPkgError(
        [
            error(
                builders.origin.path,
                f"{len(builders.builders)} builders need publishing (images move between "
                f"them through the registry), but there are no credentials for {where}: set "
                "DOCKERPKG_USERNAME/DOCKERPKG_PASSWORD, the config's username and password, "
                "or log in with docker",
                builders.origin.line,
            )
        ]
    )


def several_builders_problem(count: int, *, publish: bool) -> str | None:
    """Why a plan cannot run on COUNT builders, if it cannot: several share images only
    through the registry, so the plan must publish."""
    if count > 1 and not publish:
        return "several builders need a plan that publishes; make the plan again"
    return None
