"""Plans: immutable data saying what would be done and why. No logic beyond small queries.

Invariants: steps are in execution order; an image's build comes after its parents' builds,
and after its build stage when it has one; verify follows its build; publish follows its
verify; every step carries a Reason.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

# 4: each step carries `needs`, the keys of the steps it waits for.
# 5: each image carries the `labels` its build sets; base_changed findings.
# 6: options.publish and promote steps (all-or-nothing publishing); build secrets.
# 7: SSH agents (plan `ssh`, image `ssh`).
# 8: options.engine, the build engine decided when planning (null in plans that build nothing);
#    build identities: images' `org.dockerpkg.identity` label; staged promotions and pulls
#    held to a digest (`LABEL@DIGEST`); reason identity_changed; unstage steps.
# 9: stage steps: all_or_nothing pushes to the staging reference (publish steps before);
#    `update --refs --json` prints one plan: the update's, with `refs`, the refs plan of the
#    references it moves (shown before anything is written).
#    what each step's run decides ahead: a pull's `local_copy`, a verification's
#    `missing_test`, a build's `use_cache` (written only where set).
# 10: options.names, a selection by image names (a test session's), and options.no_publish,
#    publishing turned off by the run (nothing pushed whatever the credentials).
# 11: several platforms: platform images (`NAME:SUFFIX`, image `platform`), index images
#    (image `platforms`, `children`), index steps, each step's `platform`, builders'
#    `platforms`, reason platform_missing.
FORMAT_VERSION = 11


class Action(enum.Enum):
    """What kind of run a plan is for; the value is the JSON spelling."""

    BUILD = "build"
    PRUNE = "prune"
    UPDATE = "update"


class BuildEngine(enum.Enum):
    """Which of the daemon's two engines builds images: BuildKit or the classic one."""

    BUILDKIT = "buildkit"
    CLASSIC = "classic"


class Op(enum.Enum):
    """One kind of step."""

    PULL = "pull"
    # docker-pkg < 3's build stage: an image built from Dockerfile.build.template whose /build
    # becomes build/ in the image's build context; never published, removed afterwards.
    BUILD_STAGE = "build-stage"
    BUILD = "build"
    VERIFY = "verify"
    # all_or_nothing: push the image to its staging reference (its label names it); nothing
    # users pull moves until its promotion.
    STAGE = "stage"
    PUBLISH = "publish"
    # Point `latest` at the published version's manifest, in the registry: no build, no push.
    TAG_LATEST = "tag-latest"
    # all_or_nothing: move the version tag and `latest` to the staged manifest, once every
    # image of the run is built, verified and staged.
    PROMOTE = "promote"
    # all_or_nothing: delete a staged manifest an earlier run promoted but left (a kill
    # during the promotion, a failed `latest`).
    UNSTAGE = "unstage"
    # Several platforms: put the image index listing every platform's manifest under the
    # version tag and `latest`, once each platform's image is verified and pushed.
    INDEX = "index"
    REMOVE = "remove"
    KEEP = "keep"
    WRITE_CHANGELOG = "write_changelog"


class Reason(enum.Enum):
    """Why a step is in the plan: stable snake_case codes for CI to match on."""

    OFFLINE = "offline"  # nothing observed (--offline): assumed neither built nor published
    NOT_IN_REGISTRY = "not_in_registry"  # neither published nor in the local daemon
    NOT_BUILT_LOCALLY = "not_built_locally"  # --no-pull: the local daemon has no such image
    BUILT_LOCALLY_NOT_PUBLISHED = "built_locally_not_published"
    BUILT_IN_THIS_RUN = "built_in_this_run"
    # tag-latest: the version is published, `latest` is missing or on an older image
    LATEST_NOT_CURRENT = "latest_not_current"
    BUILD_TEMPLATE = "build_template"  # build-stage: the image built has Dockerfile.build.template
    BASE_IMAGE = "base_image"  # pulled because an image to build uses it
    PUBLISHED_DEPENDENCY = "published_dependency"  # pulled because a child is built
    OLD_VERSION = "old_version"  # prune: tags do not include the current version
    IN_USE_BY_CONTAINER = "in_use_by_container"  # prune: kept
    NEEDED_BY_CURRENT_IMAGE = "needed_by_current_image"  # prune: kept
    REQUESTED = "requested"  # update: the image named on the command line
    PARENT_UPDATED = "parent_updated"  # update: a dependency of it was updated
    SCHEDULED_REFRESH = "scheduled_refresh"  # update --all
    # plan: the published image was built from another definition under the same version
    DEFINITION_CHANGED_WITHOUT_VERSION_BUMP = "definition_changed_without_version_bump"
    # plan: a base image the published image was built on has another digest now
    BASE_CHANGED = "base_changed"
    # update --changed-bases: the image was built on a base that moved since
    BASE_UPDATED = "base_updated"
    # promote: every image of the run was built, verified and staged
    ALL_PUBLISHED = "all_published"
    # promote: an earlier run staged this version with the tree's definition
    STAGED_IN_EARLIER_RUN = "staged_in_earlier_run"
    # pull: a parent an earlier run staged, for an image to build
    STAGED_DEPENDENCY = "staged_dependency"
    # build: the daemon's image of this version, or the one an earlier run staged, records
    # another identity (its definition, or one of its parents', changed since it was built)
    IDENTITY_CHANGED = "identity_changed"
    # unstage: the version tag holds the staged manifest: an earlier run promoted it
    PROMOTED_IN_EARLIER_RUN = "promoted_in_earlier_run"
    # index: the index under the version tag lists not every platform the image is built for
    PLATFORM_MISSING = "platform_missing"


@attrs.frozen(cache_hash=True)  # keys are looked up in sets and maps throughout a run
class StepKey:
    """A step's name within its plan (an image has at most one step of each op). Plan JSON
    and text spell it `OP:IMAGE` (str, parse)."""

    op: Op
    image: str

    def __str__(self) -> str:
        return f"{self.op.value}:{self.image}"

    @property
    def words(self) -> str:
        """The key as progress lines and messages show it: `OP IMAGE`."""
        return f"{self.op.value} {self.image}"

    @classmethod
    def parse(cls, text: str) -> StepKey:
        """The key spelled TEXT (`OP:IMAGE`); ValueError when it names no op."""
        op, colon, image = text.partition(":")
        if not colon or not image:
            raise ValueError(f"step key {text!r} is not OP:IMAGE")
        return cls(Op(op), image)


@attrs.frozen
class Step:
    """One thing to do to one image (or base image, for pulls)."""

    op: Op
    image: str  # short name; for pulls of base images, the label
    reason: Reason
    label: str | None = None
    detail: str | None = None  # e.g. image ID and tags for prune, new version for update
    # The keys of the steps this one waits for (see dockerpkg.core.needs); executors follow
    # them and decide nothing of their own about order.
    needs: tuple[StepKey, ...] = ()
    # What the run of the step follows, decided when planning (dockerpkg.core.stepchoices).
    # pull: when the pull fails, the daemon's own copy of the label serves (the daemon held
    # one when planned, or was not asked).
    local_copy: bool = False
    # verify: the file of its test the image lacks, as the tree names it: skipped.
    missing_test: str | None = None
    # build, build-stage: the build may reuse the daemon's layers.
    use_cache: bool = False
    # Several platforms: the platform (`linux/arm64`) a pull, build, verification or push is
    # for; a pull of it names the image as the step's `image` (a per-platform reference).
    platform: str | None = None

    @property
    def key(self) -> StepKey:
        """The step's name within its plan (an image has one step of each op)."""
        return StepKey(self.op, self.image)


@attrs.frozen
class PlannedImage:
    """An image as the plan saw it: what it renders to, where it lives."""

    path: str
    name: str
    tag: str
    label: str
    repository: str
    depends: tuple[str, ...]
    parents: tuple[str, ...]
    dockerfile: str | None  # None: not rendered (the plan does not build it)
    bases: tuple[str, ...] = ()
    build_dockerfile: str | None = None
    has_test: bool = False
    has_dockerignore: bool = False
    # Digests of what determines the image (dockerpkg.core.definition); None: not rendered.
    definition: str | None = None
    own_definition: str | None = None
    # The labels its build sets (dockerpkg.core.imagelabels), for the images the plan rendered.
    labels: Mapping[str, str] = attrs.field(factory=dict)
    # The base images and pulled parents whose manifest digests its build records in its
    # bases label (dockerpkg.core.bases); None: no such label (not built, or labels off).
    records: tuple[str, ...] | None = None
    # pin_bases: base label -> the manifest digest its FROM lines are held to.
    pins: Mapping[str, str] = attrs.field(factory=dict)
    # The build secrets its Dockerfile mounts (ids), served to its build only.
    secrets: tuple[str, ...] = ()
    # The SSH agents its Dockerfile mounts (ids), forwarded to its build only.
    ssh: tuple[str, ...] = ()
    # cache registry: the published images its build imports layers from.
    cache_from: tuple[str, ...] = ()
    # Several platforms. A platform image (`NAME:SUFFIX`, one platform's build of image
    # NAME, tagged `TAG-SUFFIX`) has PLATFORM; an index image (NAME itself, never built)
    # has PLATFORMS, its platform images as PARENTS, and CHILDREN: platform -> where its
    # index step takes that platform's manifest from (the platform tag pushed in the run,
    # or `REPOSITORY@DIGEST` of the one the published index lists).
    platform: str | None = None
    platforms: tuple[str, ...] = ()
    children: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Finding:
    """Something wrong that no step of the plan fixes, with the command that does."""

    image: str
    label: str
    reason: Reason
    detail: str
    fix: str
    # base_changed: the base that moved, its digest then and now, and the published images
    # built on this one (outdated with it).
    base: str | None = None
    recorded: str | None = None
    current: str | None = None
    below: tuple[str, ...] = ()


@attrs.frozen
class Edit:
    """A changelog edit: the text to put in front of the file at PATH."""

    path: str
    image: str
    old_version: str
    new_version: str
    entry: str


class SecretKind(enum.Enum):
    """Where a build secret's value, or an SSH agent, comes from."""

    ENV = "env"  # an environment variable of the run
    FILE = "file"  # a file (relative paths: to the config file naming it, or the current folder)
    SSH = "ssh"  # an SSH agent: its socket, or a private key file one is started for


# Where an SSH source with no path leads: the run's agent, as buildx's `--ssh default`.
DEFAULT_AGENT = "$SSH_AUTH_SOCK"


@attrs.frozen
class PlannedSecret:
    """A build secret or SSH agent as a plan records it: its id and where it comes from
    (never its value). Plan JSON spells the source `KIND:WHERE` (`source`)."""

    id: str
    kind: SecretKind
    where: str  # the variable's name, or the file's, socket's or key file's path

    @property
    def run_agent(self) -> bool:
        """Whether it is the run's own SSH agent (SSH_AUTH_SOCK), not a socket or key file."""
        return self.kind is SecretKind.SSH and self.where == DEFAULT_AGENT

    @property
    def source(self) -> str:
        """The source as plan JSON and messages spell it: `env:VARIABLE`, `file:PATH` or
        `ssh:PATH` (`ssh:$SSH_AUTH_SOCK`: the run's agent)."""
        return f"{self.kind.value}:{self.where}"


@attrs.frozen
class PlannedBuilder:
    """A builder as a plan records it: no paths of TLS files, only whether it uses TLS."""

    url: str
    slots: int | None = None  # None: --jobs
    tls: bool = False
    # Several platforms: the platforms it builds (declared, or its own and those its machine
    # emulates, as seen when planning); empty: not asked (a tree without platforms).
    platforms: tuple[str, ...] = ()


class PublishMode(enum.Enum):
    """When the tags users pull move: image by image (docker-pkg's way), or all at the end."""

    PER_IMAGE = "per_image"
    ALL_OR_NOTHING = "all_or_nothing"


class CacheMode(enum.Enum):
    """Where builds find layers to reuse: nowhere but the daemon (docker-pkg's way, and with
    --use-cache only), or also in the registry's published images (inline cache)."""

    NONE = "none"
    REGISTRY = "registry"


@attrs.frozen
class BuildOptions:
    """Options that change what `apply` does with the steps, fixed at plan time."""

    select: str | None = None
    # The images asked for by name (sorted; None: every image --select matches); the
    # parents they need are built too, as for any selection.
    names: tuple[str, ...] | None = None
    pull: bool = True
    use_cache: bool = False
    suffix: str = ""
    publish: PublishMode = PublishMode.PER_IMAGE
    # The run asked to publish nothing (a test session): no push, whatever the credentials.
    no_publish: bool = False
    cache: CacheMode = CacheMode.NONE
    # The engine every build of the run uses. Asked for: None is the config's (see
    # Config.engine); in a build plan always set, and `apply` uses it whatever the
    # environment says then. None in plans that build nothing (prune, update).
    engine: BuildEngine | None = None


DEFAULT_OPTIONS = BuildOptions()


@attrs.frozen
class Plan:
    """What a run would do, and the digest of every input it was made from."""

    action: Action
    directory: str
    digest: str
    images: tuple[PlannedImage, ...]
    steps: tuple[Step, ...]
    options: BuildOptions = DEFAULT_OPTIONS
    notes: tuple[str, ...] = ()
    edits: tuple[Edit, ...] = ()
    registry: str | None = None
    publish: bool = False
    findings: tuple[Finding, ...] = ()
    # The builders (Docker hosts) the run spreads its builds over; empty: DOCKER_HOST's.
    builders: tuple[PlannedBuilder, ...] = ()
    # The build secrets the images use, with their sources (never their values).
    secrets: tuple[PlannedSecret, ...] = ()
    # The SSH agents the images use, with their sockets or key files.
    ssh: tuple[PlannedSecret, ...] = ()
    format_version: int = FORMAT_VERSION

    def image(self, name: str) -> PlannedImage:
        for image in self.images:
            if image.name == name:
                return image
        raise KeyError(name)

    def count(self, op: Op) -> int:
        return sum(1 for step in self.steps if step.op is op)

    @property
    def has_changes(self) -> bool:
        """Whether anything users pull would change (--detailed-exitcode): removing what an
        earlier run left staged does not count (a registry without deletes keeps it, and
        would otherwise never give a plan without changes)."""
        pending = any(step.op not in (Op.KEEP, Op.UNSTAGE) for step in self.steps)
        return pending or bool(self.edits) or bool(self.findings)
