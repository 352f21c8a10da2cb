"""What the daemon and the registry were seen to hold: the facts planning starts from, as
one value (effects observe them; `core.planmatch` rebuilds them from a saved plan)."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from dockerpkg.core.staging import Staged


@attrs.frozen
class Observed:
    """What the daemon and the registry were seen to hold, by full label."""

    offline: bool = True
    published: frozenset[str] = frozenset()
    local: frozenset[str] = frozenset()
    # Whether the daemon was asked for LOCAL (not with several builders: each has its own).
    daemon_asked: bool = True
    credentials: bool = False
    # Published label -> the own definition recorded in its image label, where one was read.
    recorded: Mapping[str, str] = attrs.field(factory=dict)
    # Label -> its manifest digest, for the published version labels and `REPOSITORY:latest`
    # where asked; without them `latest` is not checked.
    digests: Mapping[str, str] = attrs.field(factory=dict)
    # Repository -> its tags in the registry, where `latest` is not on the tree's version
    # (and each tag's digest in DIGESTS, to tell which one `latest` is on).
    tags: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    # Whether the published images' labels were read (RECORDED, BASES): `plan` reads them,
    # a quick `build` does not.
    labels_read: bool = False
    # Published label -> the base references and digests its bases label records.
    bases: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    # Base reference -> its manifest digest in the registry now (where it was found).
    base_digests: Mapping[str, str] = attrs.field(factory=dict)
    # Base references asked about that their registry does not hold (deleted, renamed).
    bases_absent: frozenset[str] = frozenset()
    # Base reference -> why its digest is unknown (its registry did not answer).
    bases_unknown: Mapping[str, str] = attrs.field(factory=dict)
    # What could not be observed, for the plan's notes (a registry of base images down).
    problems: tuple[str, ...] = ()
    # all_or_nothing: label -> what an earlier run staged for it (the identity its label
    # records, its digest), for the labels found staged.
    staged: Mapping[str, Staged] = attrs.field(factory=dict)
    # Label -> the build identity recorded on the daemon's image of it, where one is.
    local_identities: Mapping[str, str] = attrs.field(factory=dict)
    # The files outside the images' folders that verifications name (`{path}/../x`) seen on
    # disk, relative to the tree: its snapshot holds only the folders (core.runrules).
    test_files: frozenset[str] = frozenset()
    # Several platforms. Version label of an image with platforms -> platform (`linux/arm64`)
    # -> the manifest digest the image index under that label lists for it (an image
    # published as a single manifest lists its own platform, where its config says).
    platform_digests: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    # Base reference -> platform -> manifest digest, for bases of images with platforms.
    base_platforms: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    # The platform of DOCKER_HOST's daemon (`linux/amd64`), and the platforms its machine
    # runs under emulation (binfmt_misc handlers registered, for a daemon on this machine);
    # None / empty: not asked or not known.
    daemon_platform: str | None = None
    emulated: frozenset[str] = frozenset()


OFFLINE = Observed()
