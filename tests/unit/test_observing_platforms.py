"""Observing a tree with platforms: what is asked, and the fold of literal answers (an index's
children, a single image's config, the daemon's `/info`, binfmt_misc's handlers) into
Observed. No Docker, no network."""

from __future__ import annotations

import hashlib
import json
import platform
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import attrs
import pytest

from dockerpkg.core.config import Config, load_config
from dockerpkg.core.definition import DEFINITION_LABEL
from dockerpkg.core.observing import (
    MAX_CHILDREN,
    Asked,
    BinfmtHandler,
    DaemonFacts,
    PlatformAnswers,
    RegistryAnswers,
    daemon_platform,
    emulated_platforms,
    fold_observed,
    manifest_platforms,
    platform_base_questions,
    platform_label_reads,
    platform_questions,
    platform_versions,
    platforms_of,
)
from dockerpkg.core.tree import Tree, analyze_tree
from dockerpkg.effects.emulation import binfmt_handlers, daemon_emulation
from dockerpkg.effects.observe import _elsewhere
from dockerpkg.effects.platformreads import MAX_MANIFEST_BYTES, PlatformReader
from dockerpkg.effects.registry import Interrupter, RegistryError
from dockerpkg.effects.tree import read_snapshot
from tests.support.updates import write_tree

HOST = "registry.example.org:5000"
HUB_BASE = "docker-registry.wikimedia.org/bookworm:20261201"
OWN_BASE = f"{HOST}/base/busybox:1.36"
CONFIG = f"registry: {HOST}\nnamespace: team\nbase_images:\n  - {HUB_BASE}\n  - {OWN_BASE}\n"
BASE, APP = f"{HOST}/team/base:1.0", f"{HOST}/team/app:2.0"
BASE_REF, APP_REF = ("team/base", "1.0"), ("team/app", "2.0")
TWO = ("linux/amd64", "linux/arm64")
D = {name: "sha256:" + name * 64 for name in "abcdef"}
OCI = "application/vnd.oci.image.manifest.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture
def config() -> Config:
    return load_config([("config.yaml", CONFIG)])


@pytest.fixture
def two(config: Config) -> Config:
    """The config asking for amd64 and arm64 (set here: the YAML key is read elsewhere)."""
    return attrs.evolve(config, platforms=TWO)


@pytest.fixture
def tree(tmp_path: Path, config: Config) -> Tree:
    write_tree(tmp_path, {"base": ("1.0", ["busybox"]), "app": ("2.0", ["base", "bookworm"])})
    found = analyze_tree(read_snapshot(tmp_path / "images"), config, render=False).tree
    assert found is not None
    return found


def with_platforms(tree: Tree, name: str, platforms: tuple[str, ...]) -> Tree:
    """TREE with image NAME's control naming PLATFORMS."""
    image = tree.images[name]
    spec = attrs.evolve(image.spec, platforms=platforms)
    return attrs.evolve(tree, images={**tree.images, name: attrs.evolve(image, spec=spec)})


def index(*children: tuple[str, str, str | None, str]) -> dict[str, object]:
    """An OCI index of CHILDREN (os, architecture, variant, digest)."""
    manifests = []
    for os, architecture, variant, digest in children:
        platform = {"os": os, "architecture": architecture}
        if variant:
            platform["variant"] = variant
        manifests.append({"mediaType": OCI, "digest": digest, "size": 1, "platform": platform})
    return {"schemaVersion": 2, "manifests": manifests}


class TestQuestions:
    """Which images, bases and labels are asked about: only those of images with platforms."""

    def test_a_tree_without_platforms_asks_nothing(self, tree: Tree, config: Config) -> None:
        assert platforms_of(tree, config) == {}
        held = {BASE_REF: D["a"], APP_REF: D["b"]}
        assert platform_questions(tree, config, held) == ()
        assert platform_base_questions(tree, config) == ()

    def test_the_configs_platforms_for_every_image(self, tree: Tree, two: Config) -> None:
        assert platforms_of(tree, two) == {"base": TWO, "app": TWO}

    def test_an_images_own_platforms_come_first(self, tree: Tree, config: Config) -> None:
        tree = with_platforms(tree, "app", ("linux/arm64",))
        assert platforms_of(tree, config) == {"app": ("linux/arm64",)}
        assert platforms_of(tree, attrs.evolve(config, platforms=TWO)) == {
            "base": TWO,
            "app": ("linux/arm64",),
        }

    def test_only_versions_the_registry_holds(self, tree: Tree, two: Config) -> None:
        assert platform_questions(tree, two, {BASE_REF: D["a"], APP_REF: None}) == (BASE_REF,)
        assert platform_questions(tree, two, {}) == ()

    def test_bases_of_images_with_platforms_per_registry(self, tree: Tree, config: Config) -> None:
        only_app = with_platforms(tree, "app", TWO)
        groups = platform_base_questions(only_app, config)
        assert [(g.host, g.own, [r.label for r in g.refs]) for g in groups] == [
            ("docker-registry.wikimedia.org", False, [HUB_BASE])
        ]
        groups = platform_base_questions(tree, attrs.evolve(config, platforms=TWO))
        assert sorted((g.host, g.own, [r.label for r in g.refs]) for g in groups) == [
            ("docker-registry.wikimedia.org", False, [HUB_BASE]),
            (HOST, True, [OWN_BASE]),
        ]

    def test_labels_read_by_each_childs_digest(self) -> None:
        versions = {APP_REF: {"linux/amd64": D["a"], "linux/arm64": D["b"]}, BASE_REF: {}}
        built_for = {APP_REF: TWO, BASE_REF: TWO}
        assert platform_label_reads(versions, built_for) == (
            ("team/app", D["a"]),
            ("team/app", D["b"]),
        )

    def test_labels_read_only_for_the_platforms_built(self) -> None:
        """An upstream-style index lists more platforms than the image is built for: only
        those built for are read (spelled as the index spells them)."""
        listed = {"linux/amd64": D["a"], "linux/arm64": D["b"], "linux/s390x": D["c"]}
        reads = platform_label_reads({APP_REF: listed}, {APP_REF: ("linux/aarch64",)})
        assert reads == (("team/app", D["b"]),)
        assert platform_label_reads({APP_REF: listed}, {}) == ()

    def test_each_version_with_the_platforms_it_is_built_for(
        self, tree: Tree, config: Config
    ) -> None:
        tree = with_platforms(tree, "app", ("linux/arm64",))
        assert platform_versions(tree, attrs.evolve(config, platforms=TWO)) == {
            BASE_REF: TWO,
            APP_REF: ("linux/arm64",),
        }


class TestManifests:
    """What one manifest read says of its platforms."""

    def test_an_index_lists_its_children(self) -> None:
        found = index(
            ("linux", "amd64", None, D["a"]),
            ("linux", "arm64", "v8", D["b"]),
            ("linux", "arm", "v7", D["c"]),
            ("unknown", "unknown", None, D["d"]),  # an attestation, no platform
        )
        assert manifest_platforms(found, D["e"]) == {
            "linux/amd64": D["a"],
            "linux/arm64": D["b"],
            "linux/arm/v7": D["c"],
        }

    def test_unreadable_children_are_left_out(self) -> None:
        found = {"manifests": [{"digest": D["a"]}, "x", {"platform": {"os": "linux"}}]}
        assert manifest_platforms(found, D["e"]) == {}

    def test_hostile_children_are_left_out(self) -> None:
        """Only a child that is one image's manifest named by a sha256 digest is listed:
        nothing else a registry says reaches a plan, a log or a request."""
        arm64 = {"os": "linux", "architecture": "arm64"}
        children: list[dict[str, object]] = [
            {"mediaType": OCI, "digest": "sha256:../../../v2/other/manifests/x"},
            {"mediaType": OCI, "digest": "sha256:" + "A" * 64},
            {"mediaType": OCI, "digest": "sha512:" + "a" * 128},
            {"mediaType": OCI, "digest": D["a"] + "\x1b[2J"},
            {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": D["b"]},
            {"mediaType": "application/vnd.example.artifact", "digest": D["c"]},
            {"digest": D["d"]},
        ]
        for child in children:
            child["platform"] = arm64
        assert manifest_platforms({"manifests": children}, D["e"]) == {}
        children.append({"mediaType": DOCKER, "digest": D["f"], "platform": arm64})
        assert manifest_platforms({"manifests": children}, D["e"]) == {"linux/arm64": D["f"]}

    def test_at_most_so_many_children_are_looked_at(self) -> None:
        unknown = [("unknown", "unknown", None, D["a"])] * MAX_CHILDREN
        assert manifest_platforms(index(*unknown, ("linux", "arm64", None, D["b"])), D["e"]) == {}
        kept = index(*unknown[1:], ("linux", "arm64", None, D["b"]))
        assert manifest_platforms(kept, D["e"]) == {"linux/arm64": D["b"]}

    def test_a_single_image_is_of_its_configs_platform(self) -> None:
        manifest = {"schemaVersion": 2, "config": {"digest": D["f"]}}
        config = {"os": "linux", "architecture": "arm64", "variant": "v8", "config": {}}
        assert manifest_platforms(manifest, D["e"], config) == {"linux/arm64": D["e"]}
        assert manifest_platforms(manifest, D["e"], None) == {}
        assert manifest_platforms(manifest, D["e"], {"os": "linux"}) == {}
        assert manifest_platforms(manifest, D["e"], {"os": "linux", "architecture": "?"}) == {}


class TestDaemon:
    """The daemon's platform from `/info`, and what binfmt_misc's handlers emulate."""

    @pytest.mark.parametrize(
        ("os", "machine", "platform"),
        [
            ("linux", "x86_64", "linux/amd64"),
            ("linux", "aarch64", "linux/arm64"),
            ("linux", "armv7l", "linux/arm/v7"),
            ("windows", "x86_64", "windows/amd64"),
            ("linux", "", None),
            ("linux", "weird arch", None),
        ],
    )
    def test_platform(self, os: str, machine: str, platform: str | None) -> None:
        assert daemon_platform(DaemonFacts(os, machine)) == platform

    def test_enabled_qemu_handlers_with_the_fix_binary_flag(self) -> None:
        handlers = (
            BinfmtHandler("qemu-aarch64", enabled=True, flags="PF"),
            BinfmtHandler("qemu-arm", enabled=True, flags="F"),
            BinfmtHandler("qemu-s390x", enabled=False, flags="PF"),  # disabled
            BinfmtHandler("qemu-riscv64", enabled=True, flags="P"),  # not in containers
            BinfmtHandler("qemu-x86_64", enabled=True, flags="PF"),  # the daemon's own
            BinfmtHandler("qemu-sparc", enabled=True, flags="PF"),  # no such platform
            BinfmtHandler("python3.11", enabled=True, flags="F"),  # not QEMU
        )
        assert emulated_platforms(DaemonFacts("linux", "x86_64", handlers)) == {
            "linux/arm64",
            "linux/arm/v7",
            "linux/arm/v6",
        }
        assert emulated_platforms(DaemonFacts("linux", "x86_64")) == frozenset()

    def test_binfmt_misc_read(self, tmp_path: Path) -> None:
        (tmp_path / "status").write_text("enabled\n")
        (tmp_path / "register").write_text("")
        (tmp_path / "qemu-aarch64").write_text(
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n"
        )
        (tmp_path / "qemu-arm").write_text("disabled\ninterpreter /x\nflags: \n")
        assert binfmt_handlers(tmp_path) == (
            BinfmtHandler("qemu-aarch64", enabled=True, flags="PF"),
            BinfmtHandler("qemu-arm", enabled=False, flags=""),
        )
        (tmp_path / "status").write_text("disabled\n")
        assert binfmt_handlers(tmp_path) == ()
        # Not mounted (or no /proc, as on macOS): not known, which is not "none".
        assert binfmt_handlers(tmp_path / "not-mounted") is None

    def test_emulation_of_a_daemon_here(self, tmp_path: Path) -> None:
        (tmp_path / "status").write_text("enabled\n")
        (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /q\nflags: PF\n")
        handlers = (BinfmtHandler("qemu-aarch64", enabled=True, flags="PF"),)
        assert daemon_emulation(None, platform.release(), tmp_path) == (handlers, "")
        assert daemon_emulation(None, "", tmp_path) == (handlers, "")  # no kernel said

    @pytest.mark.parametrize(
        ("where", "kernel", "root", "why"),
        [
            ("DOCKER_HOST names a daemon on another machine", "", "mounted", "DOCKER_HOST"),
            (None, "6.10.14-linuxkit", "mounted", "another kernel (6.10.14-linuxkit)"),
            (None, "", "not-mounted", "cannot be read"),
        ],
    )
    def test_emulation_not_known(
        self, tmp_path: Path, where: str | None, kernel: str, root: str, why: str
    ) -> None:
        """A remote daemon, one in a virtual machine (Docker Desktop), or no binfmt_misc to
        read: what the daemon emulates is not known, and it is said why."""
        (tmp_path / "mounted").mkdir()
        (tmp_path / "mounted" / "status").write_text("enabled\n")
        handlers, unknown = daemon_emulation(where, kernel, tmp_path / root)
        assert handlers is None
        assert why in unknown

    @pytest.mark.parametrize(
        ("host", "here"),
        [
            ("", True),
            ("unix:///run/user/1000/docker.sock", True),
            ("tcp://build.example.org:2376", False),
            ("ssh://me@build.example.org", False),
        ],
    )
    def test_which_daemon_is_here(self, host: str, here: bool) -> None:
        env = {"DOCKER_HOST": host} if host else {}
        assert (_elsewhere(env, None) is None) is here
        if not here:
            assert "build.example.org" not in str(_elsewhere(env, None))


class TestFold:
    """Into Observed: platforms by version label, bases by label, labels by platform label."""

    def test_without_platforms_as_before(self, tree: Tree, config: Config) -> None:
        answers = RegistryAnswers({BASE_REF: D["a"], APP_REF: None})
        before = fold_observed(tree, config, Asked(), answers)
        assert fold_observed(tree, config, Asked(), answers, platforms=PlatformAnswers()) == before
        assert before.platform_digests == {}
        assert before.base_platforms == {}
        assert before.daemon_platform is None
        assert before.emulated == frozenset()

    def test_platforms_by_version_label(self, tree: Tree, two: Config) -> None:
        answers = RegistryAnswers({BASE_REF: D["a"], APP_REF: D["b"]})
        platforms = PlatformAnswers(
            versions={
                BASE_REF: {"linux/amd64": D["c"], "linux/arm64": D["d"]},
                APP_REF: {"linux/amd64": D["b"]},  # a single amd64 image
            },
            bases={OWN_BASE: {"linux/amd64": D["e"], "linux/arm64": D["f"]}},
        )
        daemon = DaemonFacts("linux", "x86_64", (BinfmtHandler("qemu-aarch64", True, "PF"),))
        seen = fold_observed(tree, two, Asked(), answers, platforms=platforms, daemon=daemon)
        assert seen.platform_digests == {
            BASE: {"linux/amd64": D["c"], "linux/arm64": D["d"]},
            APP: {"linux/amd64": D["b"]},
        }
        assert seen.base_platforms == {OWN_BASE: {"linux/amd64": D["e"], "linux/arm64": D["f"]}}
        assert seen.daemon_platform == "linux/amd64"
        assert seen.emulated == {"linux/arm64"}
        assert seen.published == {BASE, APP}

    def test_labels_recorded_per_platform_label(self, tree: Tree, two: Config) -> None:
        answers = RegistryAnswers({BASE_REF: D["a"]})
        platforms = PlatformAnswers(
            versions={BASE_REF: {"linux/amd64": D["c"], "linux/arm64": D["d"]}},
            labels={
                ("team/base", D["c"]): {DEFINITION_LABEL: "amd", "other": "dropped"},
                ("team/base", D["d"]): {DEFINITION_LABEL: "arm"},
            },
        )
        seen = fold_observed(tree, two, Asked(definitions=True), answers, platforms=platforms)
        assert seen.recorded == {
            f"{HOST}/team/base:1.0-amd64": "amd",
            f"{HOST}/team/base:1.0-arm64": "arm",
        }

    def test_a_daemon_whose_emulation_is_not_known(self, tree: Tree, two: Config) -> None:
        """Its platforms are not judged (no daemon platform: the plan says they were not
        checked) rather than as its own alone, and the note says why."""
        daemon = DaemonFacts("linux", "x86_64", None, "it runs on another kernel (6.10)")
        seen = fold_observed(tree, two, Asked(), RegistryAnswers(), daemon=daemon)
        assert seen.daemon_platform is None
        assert seen.emulated == frozenset()
        assert len(seen.problems) == 1
        assert "platforms the daemon builds: it runs on another kernel (6.10)" in seen.problems[0]
        known = DaemonFacts("linux", "x86_64", ())
        seen = fold_observed(tree, two, Asked(), RegistryAnswers(), daemon=known)
        assert seen.daemon_platform == "linux/amd64"
        assert (seen.emulated, seen.problems) == (frozenset(), ())

    def test_a_base_registry_down_is_a_note(self, tree: Tree, two: Config) -> None:
        platforms = PlatformAnswers(failures=("registry down",))
        seen = fold_observed(tree, two, Asked(), RegistryAnswers(), platforms=platforms)
        assert seen.problems == ("cannot tell the platforms of base images: registry down",)
        assert seen.base_platforms == {}


class HostileRegistry(ThreadingHTTPServer):
    """A registry on loopback answering what a real one would refuse to store: MANIFESTS by
    path under /v2/, config BLOBS by digest; every request's path is recorded."""

    def __init__(self, manifests: dict[str, bytes], blobs: dict[str, bytes]) -> None:
        self.manifests, self.blobs, self.asked = manifests, blobs, list[str]()
        super().__init__(("127.0.0.1", 0), _Answer)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Answer(BaseHTTPRequestHandler):
    server: HostileRegistry

    def do_GET(self) -> None:
        self.server.asked.append(self.path)
        body, kind = b"{}", "application/json"
        if self.path.startswith("/v2/") and self.path != "/v2/":
            _, _, what = self.path.partition("/manifests/")
            body = self.server.manifests.get(what) or self.server.blobs.get(
                self.path.rpartition("/")[2], b""
            )
            kind = json.loads(body).get("mediaType", "application/json") if body else kind
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    """Serves app 2.0's index (its children: one hostile, amd64, arm64, s390x) and each good
    child's manifest and config."""
    children, manifests, blobs = [], {}, {}
    for arch in ("amd64", "arm64", "s390x"):
        config = json.dumps({"os": "linux", "architecture": arch, "config": {"Labels": {}}})
        config_digest = "sha256:" + hashlib.sha256(config.encode()).hexdigest()
        blobs[config_digest] = config.encode()
        body = json.dumps({"mediaType": OCI, "config": {"digest": config_digest}}).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        manifests[digest] = body
        children.append(
            {"mediaType": OCI, "digest": digest, "platform": {"os": "linux", "architecture": arch}}
        )
    bad = {
        "mediaType": OCI,
        "digest": "sha256:../../../v2/x",
        "platform": {"os": "linux", "architecture": "arm"},
    }
    index_body = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [bad, *children],
    }
    manifests["2.0"] = json.dumps(index_body).encode()
    server = HostileRegistry(manifests, blobs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class TestReadsOfAHostileRegistry:
    """The reader against a registry that says what no real one stores: nothing it says
    becomes a traceback, a request elsewhere, or more reads than the image needs."""

    def read(self, server: HostileRegistry, built_for: tuple[str, ...]) -> PlatformAnswers:
        config = load_config([("config.yaml", f"registry: {server.host}\nnamespace: team\n")])
        reader = PlatformReader(config, None, {}, Interrupter())
        return reader.read({APP_REF: built_for}, (), labels=True)

    def test_a_hostile_child_is_never_asked_for(self, hostile: HostileRegistry) -> None:
        found = self.read(hostile, TWO)
        assert set(found.versions[APP_REF]) == {"linux/amd64", "linux/arm64", "linux/s390x"}
        assert not [path for path in hostile.asked if ".." in path]

    def test_labels_read_only_for_the_platforms_built(self, hostile: HostileRegistry) -> None:
        found = self.read(hostile, ("linux/arm64",))
        arm64 = found.versions[APP_REF]["linux/arm64"]
        assert set(found.labels) == {("team/app", arm64)}
        child_reads = [p for p in hostile.asked if "/manifests/sha256:" in p]
        assert child_reads == [f"/v2/team/app/manifests/{arm64}"]

    def test_a_manifest_too_large_is_an_error_naming_it(self, hostile: HostileRegistry) -> None:
        hostile.manifests["2.0"] = b'{"manifests": [' + b" " * MAX_MANIFEST_BYTES + b"]}"
        with pytest.raises(RegistryError, match=rf"registry {hostile.host}: .*team/app@2.0"):
            self.read(hostile, TWO)

    def test_a_name_no_registry_allows_is_an_error_naming_it(
        self, hostile: HostileRegistry
    ) -> None:
        with pytest.raises(RegistryError, match=rf"registry {hostile.host}: .*not a valid tag"):
            PlatformReader(
                load_config([("config.yaml", f"registry: {hostile.host}\n")]),
                None,
                {},
                Interrupter(),
            ).read({("team/app", "sha256:../x"): TWO}, (), labels=False)
