"""Building, verifying and publishing image trees with the real daemon and real registries.

Every test writes its own tree under tmp_path, with image names no other run uses, starts its
own registry (see tests/support/services.py), pushes the busybox base image to it and removes
every image under that registry's host when it ends. What is published is checked through the
registry's API, never through the daemon. Most runs call `main()` in-process; the ones closest
to a user run the installed `dockerpkg` program.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import attrs
import docker
import pytest
import requests

from dockerpkg.cli import main
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.registry import RegistryClient
from tests.support import cleanup, services
from tests.support.services import Auth, Registry, RegistryFactory
from tests.support.trees import BASE_IMAGE, unique_prefix, write_config, write_image

DOCKERPKG = Path(sys.executable).parent / "dockerpkg"
NAMESPACE = "tests"
# The start of most test images' templates: the registry's busybox base.
FROM_BASE = 'FROM {{ "busybox" | image_tag }}\n'
BASE_REPOSITORY = BASE_IMAGE.partition(":")[0]
# Stands for "the registry's own" username or password in Site.config.
OWN: Final = "<the registry's own>"


# --- the world each test runs in ----------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("isolated_home")


@attrs.frozen
class Outcome:
    """What one dockerpkg invocation printed and returned."""

    status: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@attrs.frozen
class Site:
    """A registry holding the base image, and a work folder for one tree and its configs."""

    registry: Registry
    prefix: str
    work: Path

    @property
    def tree(self) -> Path:
        return self.work / "tree"

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.registry.username or "user", self.registry.password or "secret")

    def name(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    def label(self, short: str, tag: str) -> str:
        return f"{self.registry.host}/{NAMESPACE}/{self.name(short)}:{tag}"

    def config(
        self,
        filename: str = "config.yaml",
        *,
        username: str | None = OWN,
        password: str | None = OWN,
    ) -> Path:
        """A config for this site: the registry's own credentials unless given (None: left out)."""
        creds = self.credentials
        return write_config(
            self.work / filename,
            self.registry,
            namespace=NAMESPACE,
            username=creds.username if username is OWN else username,
            password=creds.password if password is OWN else password,
        )

    def registry_client(self) -> RegistryClient:
        return RegistryClient(self.registry.host, self.credentials)

    def tags(self, short: str) -> list[str]:
        """The tags of an image as the registry lists them."""
        with self.registry_client() as client:
            return client.tags(f"{NAMESPACE}/{self.name(short)}")

    def digest(self, short: str, tag: str) -> str | None:
        with self.registry_client() as client:
            return client.manifest_digest(f"{NAMESPACE}/{self.name(short)}", tag)

    def catalog(self) -> list[str]:
        """Every repository the registry holds."""
        creds = self.credentials
        auth = (creds.username, creds.password) if self.registry.auth == "htpasswd" else None
        response = requests.get(f"{self.registry.url}/v2/_catalog", auth=auth, timeout=10)
        response.raise_for_status()
        repositories: list[str] = response.json()["repositories"]
        return sorted(repositories)


SiteFactory = Callable[..., Site]


@pytest.fixture
def make_site(
    docker_client: docker.DockerClient,
    busybox_base: str,
    registry_factory: RegistryFactory,
    tmp_path: Path,
) -> Iterator[SiteFactory]:
    """`make_site(auth="htpasswd")`: a fresh registry with the base image pushed to it."""
    hosts: list[str] = []

    def make(auth: Auth = "htpasswd") -> Site:
        registry = registry_factory(auth)
        hosts.append(registry.host)
        base = services.tag_image(docker_client, busybox_base, registry.ref(BASE_IMAGE))
        services.push_image(docker_client, base, registry)
        work = tmp_path / f"site{len(hosts)}"
        work.mkdir()
        return Site(registry=registry, prefix=unique_prefix(), work=work)

    try:
        yield make
    finally:
        for host in hosts:
            cleanup.remove_tags_under(docker_client, f"{host}/")


def local_tags(client: docker.DockerClient, host: str, *, include_base: bool = False) -> list[str]:
    """Tags the daemon holds under a registry host (the base image left out unless asked)."""
    tags = [
        tag
        for image in client.api.images()  # no per-image inspect to race other daemon users
        for tag in image.get("RepoTags") or ()
        if tag.startswith(f"{host}/") and (include_base or f"/{BASE_REPOSITORY}:" not in tag)
    ]
    return sorted(tags)


@pytest.fixture
def dockerpkg(capfd: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """Run `main(argv)` in-process; returns its status and everything printed to fds 1 and 2."""

    def run(*argv: str | Path) -> Outcome:
        capfd.readouterr()
        status = main([str(a) for a in argv])
        out, err = capfd.readouterr()
        return Outcome(status, out, err)

    return run


def run_program(*argv: str | Path) -> Outcome:
    """Run the installed `dockerpkg` program, as a user would."""
    result = subprocess.run(
        [str(DOCKERPKG), *(str(a) for a in argv)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def steps_by_key(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(step["op"], step["image"]): step for step in report["steps"]}


def leftover_contexts(site: Site) -> list[Path]:
    """Build folders of this site's images still in the temporary directory."""
    return sorted(Path(tempfile.gettempdir()).glob(f"dockerpkg.*-{site.prefix}-*"))


def container_output(client: docker.DockerClient, image: str, *command: str) -> str:
    output: bytes = client.containers.run(image, list(command), remove=True)
    return output.decode("utf-8")


def assert_no_traceback(outcome: Outcome) -> None:
    assert "Traceback" not in outcome.text, outcome.text


# --- trees ------------------------------------------------------------------------------------

# A script checking an image's /etc/*-marker files, in the order given, by running the image.
MARKER_TEST = """\
#!/bin/sh
set -e
out=$(docker run --rm "$1" cat {files})
echo "verified: $(echo $out)"
test "$(echo $out)" = "{expected}"
"""


def marker_test(*markers: str, expected: str | None = None) -> str:
    files = " ".join(f"/etc/{m}-marker" for m in markers)
    return MARKER_TEST.format(files=files, expected=expected or " ".join(markers))


def write_diamond(site: Site) -> None:
    """root <- left, right <- top: three levels, `top` with two parents.

    `left` and `top` have a test.sh that runs the image; `right` copies its folder into the
    image through a .dockerignore that keeps notes.tmp and the build files out.
    """
    root, left, right, top = (site.name(n) for n in ("root", "left", "right", "top"))
    write_image(
        site.tree,
        root,
        "1.0-1",
        'FROM {{ "busybox" | image_tag }}\nRUN echo root > /etc/root-marker\n',
    )
    write_image(
        site.tree,
        left,
        "2.0",
        f'FROM {{{{ "{root}" | image_tag }}}}\nRUN echo left > /etc/left-marker\n',
        depends=[root],
        files={"test.sh": marker_test("root", "left")},
    )
    write_image(
        site.tree,
        right,
        "3.1-2",
        f'FROM {{{{ "{root}" | image_tag }}}}\nCOPY . /srv/right/\n',
        depends=[root],
        files={
            "index.html": "<p>right</p>\n",
            "notes.tmp": "build notes, not for the image\n",
            ".dockerignore": "*.tmp\nchangelog\ncontrol\nDockerfile.template\n",
        },
    )
    write_image(
        site.tree,
        top,
        "0.1",
        f'FROM {{{{ "{right}" | image_tag }}}} AS right\n'
        f'FROM {{{{ "{left}" | image_tag }}}}\n'
        "COPY --from=right /srv/right /srv/right\n"
        "RUN echo top > /etc/top-marker\n",
        depends=[left, right],
        files={"test.sh": marker_test("root", "left", "top")},
    )


DIAMOND_VERSIONS = {"root": "1.0-1", "left": "2.0", "right": "3.1-2", "top": "0.1"}


def write_chain(site: Site) -> None:
    """root <- child: the smallest tree with a parent."""
    root, child = site.name("root"), site.name("child")
    write_image(
        site.tree,
        root,
        "1.0",
        'FROM {{ "busybox" | image_tag }}\nRUN echo root > /etc/root-marker\n',
    )
    write_image(
        site.tree,
        child,
        "1.0",
        f'FROM {{{{ "{root}" | image_tag }}}}\nRUN echo child > /etc/child-marker\n',
        depends=[root],
        files={"test.sh": marker_test("root", "child")},
    )


# --- tests ------------------------------------------------------------------------------------


class TestApplyPublishesTree:
    """`apply DIRECTORY` builds, verifies and publishes a whole tree, dependencies first."""

    def test_every_image_published_with_latest(
        self, make_site: SiteFactory, docker_client: docker.DockerClient
    ) -> None:
        site = make_site()
        write_diamond(site)
        report_path, run_dir = site.work / "report.json", site.work / "run"
        outcome = run_program(
            "-c", site.config(), "apply", "--report", report_path, "--run-dir", run_dir, site.tree
        )
        assert outcome.status == 0, outcome.text
        assert_no_traceback(outcome)

        report = read_json(report_path)
        steps = steps_by_key(report)
        assert [s for s in report["steps"] if s["outcome"] != "succeeded"] == []
        for short in DIAMOND_VERSIONS:
            for op in ("build", "verify", "publish"):
                assert steps[op, site.name(short)]["outcome"] == "succeeded", (op, short)
        base = site.registry.ref(BASE_IMAGE)
        assert steps["pull", base]["reason"] == "base_image"

        for short, version in DIAMOND_VERSIONS.items():
            assert site.tags(short) == sorted([version, "latest"]), short
            digest = site.digest(short, version)
            assert digest is not None
            assert site.digest(short, "latest") == digest, short
            assert steps["publish", site.name(short)]["detail"] == digest, short
        assert site.catalog() == sorted(
            [BASE_REPOSITORY, *(f"{NAMESPACE}/{site.name(s)}" for s in DIAMOND_VERSIONS)]
        )

        # The verifications ran the images: their output is in the logs.
        left_log = (run_dir / f"{site.name('left')}.log").read_text(encoding="utf-8")
        assert "verified: root left\n" in left_log
        top_log = (run_dir / f"{site.name('top')}.log").read_text(encoding="utf-8")
        assert "verified: root left top\n" in top_log
        assert steps["verify", site.name("root")]["detail"].startswith("skipped: no ")

        # The .dockerignore kept notes.tmp and the build files out; the page went in.
        for short in ("right", "top"):
            label = site.label(short, DIAMOND_VERSIONS[short])
            listing = container_output(docker_client, label, "ls", "-A", "/srv/right").split()
            assert "index.html" in listing, (short, listing)
            for excluded in ("notes.tmp", "changelog", "control", "Dockerfile.template"):
                assert excluded not in listing, (short, listing)

        assert leftover_contexts(site) == []

    def test_second_plan_has_nothing_to_do(
        self, make_site: SiteFactory, dockerpkg: Callable[..., Outcome]
    ) -> None:
        site = make_site()
        write_diamond(site)
        config = site.config()
        first = dockerpkg("-c", config, "build", "--quiet", site.tree)
        assert first.status == 0, first.text
        assert "4 built, 4 verified, 4 published" in first.out

        again = dockerpkg("-c", config, "plan", "--json", site.tree)
        assert again.status == 0, again.text
        plan = json.loads(again.out)
        assert plan["steps"] == []
        assert plan["publish"] is True
        assert dockerpkg("-c", config, "plan", "--detailed-exitcode", site.tree).status == 0
        rebuilt = dockerpkg("-c", config, "build", site.tree)
        assert rebuilt.status == 0
        assert rebuilt.out == "Plan: nothing to do.\n"

    def test_new_image_builds_on_parent_pulled_from_registry(
        self,
        make_site: SiteFactory,
        dockerpkg: Callable[..., Outcome],
        docker_client: docker.DockerClient,
    ) -> None:
        """A published parent missing from the daemon is pulled, not rebuilt."""
        site = make_site()
        write_chain(site)
        config = site.config()
        assert dockerpkg("-c", config, "apply", "--quiet", site.tree).status == 0
        published = site.digest("child", "1.0")
        for tag in local_tags(docker_client, site.registry.host):
            docker_client.images.remove(tag)
        child, leaf = site.name("child"), site.name("leaf")
        write_image(
            site.tree,
            leaf,
            "1.0",
            f'FROM {{{{ "{child}" | image_tag }}}}\nRUN echo leaf > /etc/leaf-marker\n',
            depends=[child],
            files={"test.sh": marker_test("root", "child", "leaf")},
        )

        planned = dockerpkg("-c", config, "plan", "--json", site.tree)
        steps = [(s["op"], s["image"], s["reason"]) for s in json.loads(planned.out)["steps"]]
        assert steps == [
            ("pull", child, "published_dependency"),
            ("build", leaf, "not_in_registry"),
            ("verify", leaf, "built_in_this_run"),
            ("publish", leaf, "built_in_this_run"),
        ]
        applied = dockerpkg("-c", config, "apply", site.tree)
        assert applied.status == 0, applied.text
        assert site.tags("leaf") == ["1.0", "latest"]
        assert site.digest("child", "1.0") == published


class TestFailures:
    """A failure stops what depends on it and nothing else."""

    def test_failed_verification_and_build_skip_dependents_only(
        self,
        make_site: SiteFactory,
        dockerpkg: Callable[..., Outcome],
        docker_client: docker.DockerClient,
    ) -> None:
        site = make_site()
        root, good, good_child, bad, bad_child, broken = (
            site.name(n) for n in ("root", "good", "good-child", "bad", "bad-child", "broken")
        )
        from_root = f'FROM {{{{ "{root}" | image_tag }}}}\n'
        write_image(
            site.tree,
            root,
            "1.0",
            'FROM {{ "busybox" | image_tag }}\nRUN echo root > /etc/root-marker\n',
        )
        write_image(
            site.tree,
            good,
            "1.0",
            from_root + "RUN echo good > /etc/good-marker\n",
            depends=[root],
            files={"test.sh": marker_test("root", "good")},
        )
        write_image(
            site.tree,
            good_child,
            "1.0",
            f'FROM {{{{ "{good}" | image_tag }}}}\n',
            depends=[good],
        )
        write_image(
            site.tree,
            bad,
            "1.0",
            from_root + "RUN echo bad > /etc/bad-marker\n",
            depends=[root],
            files={"test.sh": marker_test("root", "bad", expected="root good")},
        )
        write_image(
            site.tree, bad_child, "1.0", f'FROM {{{{ "{bad}" | image_tag }}}}\n', depends=[bad]
        )
        write_image(site.tree, broken, "1.0", from_root + "RUN exit 3\n", depends=[root])

        report_path, run_dir = site.work / "report.json", site.work / "run"
        outcome = dockerpkg(
            "-c", site.config(), "apply", "--report", report_path, "--run-dir", run_dir, site.tree
        )
        assert outcome.status == 1, outcome.text
        assert_no_traceback(outcome)

        steps = steps_by_key(read_json(report_path))
        for short in ("root", "good", "good-child"):
            for op in ("build", "verify", "publish"):
                assert steps[op, site.name(short)]["outcome"] == "succeeded", (op, short)
            assert site.tags(short) == ["1.0", "latest"], short

        assert steps["build", bad]["outcome"] == "succeeded"
        assert steps["verify", bad]["outcome"] == "failed"
        assert steps["verify", bad]["error"] == f"verification failed (exit 1); see {bad}.log"
        assert steps["publish", bad]["outcome"] == "skipped"
        assert steps["publish", bad]["error"] == f"verify {bad} failed"
        for op in ("build", "verify", "publish"):
            assert steps[op, bad_child]["outcome"] == "skipped", op
            assert steps[op, bad_child]["error"] == f"verify {bad} failed", op
        # The test ran the image, saw its output and said no.
        bad_log = (run_dir / f"{bad}.log").read_text(encoding="utf-8")
        assert "verified: root bad\n" in bad_log

        assert steps["build", broken]["outcome"] == "failed"
        assert "build failed" in steps["build", broken]["error"]
        assert "exit code: 3" in steps["build", broken]["error"]
        for op in ("verify", "publish"):
            assert steps[op, broken]["outcome"] == "skipped"
            assert steps[op, broken]["error"] == f"build {broken} failed"

        assert site.catalog() == sorted(
            [BASE_REPOSITORY, *(f"{NAMESPACE}/{n}" for n in (root, good, good_child))]
        )
        assert "Failures:" in outcome.out
        assert f"verify {bad}: verification failed" in outcome.out
        assert "3 published, 2 failed" in outcome.out
        assert local_tags(docker_client, site.registry.host) == sorted(
            [
                *(
                    site.label(n, t)
                    for n in ("root", "good", "good-child")
                    for t in ("1.0", "latest")
                ),
                site.label("bad", "1.0"),
            ]
        )
        # Neither the failed build nor the verifications left a container or a build folder.
        root_label = site.label("root", "1.0")
        assert docker_client.containers.list(all=True, filters={"ancestor": root_label}) == []
        assert leftover_contexts(site) == []


class TestSavedPlans:
    """`plan --out` then `apply PLAN.json` runs that plan, and refuses it once inputs change."""

    def test_apply_saved_plan_and_refuse_stale_ones(
        self,
        make_site: SiteFactory,
        dockerpkg: Callable[..., Outcome],
        docker_client: docker.DockerClient,
    ) -> None:
        site = make_site()
        write_chain(site)
        config = site.config()
        host = site.registry.host
        template = site.tree / site.name("child") / "Dockerfile.template"
        changelog = site.tree / site.name("child") / "changelog"

        # A template edited after planning: refused, nothing built or pushed.
        stale = site.work / "stale.json"
        assert dockerpkg("-c", config, "plan", "--out", stale, site.tree).status == 0
        template.write_text(template.read_text(encoding="utf-8") + "ENV EDITED=1\n", "utf-8")
        refused = dockerpkg("-c", config, "apply", stale)
        assert refused.status == 1
        assert f"{stale}: error: stale plan:" in refused.err
        assert "nothing was changed" in refused.err
        assert_no_traceback(refused)
        assert local_tags(docker_client, host) == []
        assert site.catalog() == [BASE_REPOSITORY]

        # A fresh plan applies.
        fresh = site.work / "fresh.json"
        planned = dockerpkg("-c", config, "plan", "--out", fresh, "--json", site.tree)
        assert planned.status == 0
        assert json.loads(planned.out) == read_json(fresh)
        applied = dockerpkg("-c", config, "apply", "--report", site.work / "r.json", fresh)
        assert applied.status == 0, applied.text
        assert site.tags("root") == ["1.0", "latest"]
        assert site.tags("child") == ["1.0", "latest"]
        published = site.digest("child", "latest")

        # A changelog edited after planning: refused, the new version neither built nor pushed.
        bumped = site.work / "bumped.json"
        assert dockerpkg("-c", config, "plan", "--out", bumped, site.tree).status == 0
        changelog.write_text(
            changelog.read_text(encoding="utf-8").replace("(1.0)", "(1.1)"), encoding="utf-8"
        )
        refused = dockerpkg("-c", config, "apply", bumped)
        assert refused.status == 1
        assert "stale plan" in refused.err
        assert site.tags("child") == ["1.0", "latest"]
        assert site.digest("child", "latest") == published
        assert site.label("child", "1.1") not in local_tags(docker_client, host)


class TestCredentials:
    """Publishing needs working credentials; without them nothing half-published is left."""

    def test_wrong_password_refused_before_building(
        self,
        make_site: SiteFactory,
        dockerpkg: Callable[..., Outcome],
        docker_client: docker.DockerClient,
    ) -> None:
        site = make_site("htpasswd")
        write_chain(site)
        wrong = "wrong-" + (site.registry.password or "")
        config = site.config(password=wrong)
        for argv in (("plan", site.tree), ("apply", site.tree)):
            outcome = dockerpkg("-c", config, *argv)
            assert outcome.status == 1, (argv, outcome.text)
            assert f"{site.registry.host}: error: authentication refused" in outcome.err, argv
            assert f"did not accept user '{site.credentials.username}'" in outcome.err
            assert wrong not in outcome.text
            assert_no_traceback(outcome)
        assert local_tags(docker_client, site.registry.host) == []
        assert site.catalog() == [BASE_REPOSITORY]

    def test_password_wrong_when_a_saved_plan_runs_stops_it(
        self,
        make_site: SiteFactory,
        dockerpkg: Callable[..., Outcome],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The password is right when planning (Docker's config) and wrong when the saved
        plan is applied."""
        site = make_site("htpasswd")
        write_chain(site)
        username = site.credentials.username
        config = site.config(password=None)  # the password comes from Docker's config
        docker_config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"

        def login(password: str) -> None:
            auth = base64.b64encode(f"{username}:{password}".encode()).decode()
            auths = {"auths": {site.registry.host: {"auth": auth}}}
            docker_config.write_text(json.dumps(auths), encoding="utf-8")

        login(site.credentials.password)
        plan_path = site.work / "plan.json"
        planned = dockerpkg("-c", config, "plan", "--out", plan_path, site.tree)
        assert planned.status == 0, planned.text
        assert read_json(plan_path)["publish"] is True

        wrong = "wrong-" + site.credentials.password
        login(wrong)
        report_path = site.work / "report.json"
        outcome = dockerpkg("-c", config, "apply", "--report", report_path, plan_path)
        # The saved plan is checked against the registry before anything is built: the
        # password is refused there, and the run stops.
        assert outcome.status == 1, outcome.text
        assert_no_traceback(outcome)
        assert wrong not in outcome.text
        assert "authentication refused" in outcome.err
        assert "(asked before applying the saved plan)" in outcome.err
        assert "start   build" not in outcome.err
        assert not report_path.exists()
        assert site.catalog() == [BASE_REPOSITORY]

    def test_without_credentials_publishing_is_off(
        self,
        make_site: SiteFactory,
        dockerpkg: Callable[..., Outcome],
        docker_client: docker.DockerClient,
    ) -> None:
        site = make_site("none")
        write_chain(site)
        config = site.config(username=None, password=None)

        planned = dockerpkg("-c", config, "plan", "--json", site.tree)
        assert planned.status == 0, planned.text
        plan = json.loads(planned.out)
        assert plan["publish"] is False
        assert {s["op"] for s in plan["steps"]} == {"pull", "build", "verify"}
        assert any(n.startswith("publishing is off") for n in plan["notes"])
        text = dockerpkg("-c", config, "plan", site.tree)
        assert f"note: publishing is off: no credentials for {site.registry.host}" in text.out

        applied = dockerpkg("-c", config, "apply", site.tree)
        assert applied.status == 0, applied.text
        assert "0 published" in applied.out
        assert site.catalog() == [BASE_REPOSITORY]
        assert local_tags(docker_client, site.registry.host) == [
            site.label("child", "1.0"),
            site.label("root", "1.0"),
        ]

    def test_without_credentials_a_private_registry_is_a_clear_error(
        self, make_site: SiteFactory, dockerpkg: Callable[..., Outcome]
    ) -> None:
        """Nothing can be known of a registry that refuses anonymous reads: say so."""
        site = make_site("htpasswd")
        write_chain(site)
        outcome = dockerpkg("-c", site.config(username=None, password=None), "plan", site.tree)
        assert outcome.status == 1
        assert "authentication required" in outcome.err
        assert f"no credentials were found for registry {site.registry.host}" in outcome.err
        assert_no_traceback(outcome)


class TestNoPull:
    """`--no-pull` trusts the daemon: local images are published, missing ones rebuilt."""

    def test_local_unpublished_images_are_verified_and_published(
        self,
        make_site: SiteFactory,
        dockerpkg: Callable[..., Outcome],
        docker_client: docker.DockerClient,
    ) -> None:
        site = make_site("none")
        write_chain(site)
        # Built without credentials: in the daemon, not in the registry.
        unpublished = dockerpkg("-c", site.config(username=None, password=None), "apply", site.tree)
        assert unpublished.status == 0, unpublished.text
        config = site.config("publish.yaml")

        planned = dockerpkg("-c", config, "plan", "--no-pull", "--json", site.tree)
        assert planned.status == 0, planned.text
        steps = [(s["op"], s["image"], s["reason"]) for s in json.loads(planned.out)["steps"]]
        reason = "built_locally_not_published"
        assert steps == [
            (op, site.name(short), reason)
            for short in ("root", "child")
            for op in ("verify", "publish")
        ]

        applied = dockerpkg("-c", config, "apply", "--no-pull", site.tree)
        assert applied.status == 0, applied.text
        assert "0 built, 2 verified, 2 published" in applied.out
        assert site.tags("root") == ["1.0", "latest"]
        assert site.tags("child") == ["1.0", "latest"]

        # Published but gone from the daemon: --no-pull rebuilds, the default pulls nothing.
        for tag in local_tags(docker_client, site.registry.host):
            docker_client.images.remove(tag)
        rebuild = dockerpkg("-c", config, "plan", "--no-pull", "--json", site.tree)
        ops = [(s["op"], s["reason"]) for s in json.loads(rebuild.out)["steps"]]
        assert ("build", "not_built_locally") in ops
        assert not any(op == "pull" for op, _ in ops)
        assert json.loads(dockerpkg("-c", config, "plan", "--json", site.tree).out)["steps"] == []


class TestSecrets:
    """The registry password shows nowhere: output, plan, report, logs."""

    def test_password_never_shown(self, make_site: SiteFactory) -> None:
        site = make_site("htpasswd")
        write_chain(site)
        config = site.config()
        password = site.credentials.password
        basic = base64.b64encode(f"{site.credentials.username}:{password}".encode()).decode()
        plan_path, report_path = site.work / "plan.json", site.work / "report.json"
        run_dir = site.work / "run"

        planned = run_program("-c", config, "plan", "--json", "--out", plan_path, site.tree)
        assert planned.status == 0, planned.text
        applied = run_program(
            "-c", config, "--debug", "apply", "--report", report_path, "--run-dir", run_dir,
            plan_path,
        )  # fmt: skip
        assert applied.status == 0, applied.text
        assert site.tags("child") == ["1.0", "latest"]

        logs = sorted(run_dir.iterdir())
        assert {p.name for p in logs} >= {f"{site.name('root')}.log", f"{site.name('child')}.log"}
        texts = {
            "plan output": planned.text,
            "apply output": applied.text,
            "plan file": plan_path.read_text(encoding="utf-8"),
            "report": report_path.read_text(encoding="utf-8"),
            **{str(p): p.read_text(encoding="utf-8") for p in logs},
        }
        for where, text in texts.items():
            assert password not in text, where
            assert basic not in text, where


class TestDrift:
    """A template changed without a changelog entry is found through the definition label of
    the published image, for that image only; `update` turns the finding into a rebuild."""

    def test_changed_template_without_bump_is_drift_until_updated(
        self, make_site: SiteFactory, dockerpkg: Callable[..., Outcome]
    ) -> None:
        site = make_site()
        write_chain(site)
        config = site.config()
        root, child = site.name("root"), site.name("child")
        built = dockerpkg("-c", config, "build", "--quiet", site.tree)
        assert built.status == 0, built.text

        clean = json.loads(dockerpkg("-c", config, "plan", "--json", site.tree).out)
        assert clean["steps"] == []
        assert clean["findings"] == []

        template = site.tree / root / "Dockerfile.template"
        template.write_text(template.read_text(encoding="utf-8") + "RUN true\n", encoding="utf-8")
        drift = dockerpkg("-c", config, "plan", "--json", site.tree)
        assert drift.status == 0, drift.text
        plan = json.loads(drift.out)
        assert plan["steps"] == []  # the version is published: nothing would be rebuilt
        assert [(f["image"], f["reason"]) for f in plan["findings"]] == [
            (root, "definition_changed_without_version_bump")
        ]
        changed = plan["findings"][0]
        assert changed["fix"].startswith(f"dockerpkg update {root} ")
        text = dockerpkg("-c", config, "plan", site.tree)
        assert "definition_changed_without_version_bump" in text.out
        assert f"fix: dockerpkg update {root}" in text.out
        assert dockerpkg("-c", config, "plan", "--detailed-exitcode", site.tree).status == 2

        updated = dockerpkg("-c", config, "update", root, site.tree)
        assert updated.status == 0, updated.text
        after = json.loads(dockerpkg("-c", config, "plan", "--json", site.tree).out)
        assert after["findings"] == []
        assert sorted(s["image"] for s in after["steps"] if s["op"] == "build") == sorted(
            [root, child]
        )

    def test_labels_are_recorded_unless_turned_off(
        self,
        make_site: SiteFactory,
        dockerpkg: Callable[..., Outcome],
        docker_client: docker.DockerClient,
    ) -> None:
        site = make_site()
        write_chain(site)
        config = site.config()
        root, child = site.name("root"), site.name("child")
        off = config.read_text(encoding="utf-8") + "definition_labels: false\n"
        config.write_text(off, encoding="utf-8")
        plan = json.loads(dockerpkg("-c", config, "plan", "--json", site.tree).out)
        assert dockerpkg("-c", config, "build", "--quiet", site.tree).status == 0
        labels = docker_client.images.get(site.label("root", "1.0")).labels or {}
        assert "org.dockerpkg.definition" not in labels
        config.write_text(off.replace("false", "true"), encoding="utf-8")
        template = site.tree / child / "Dockerfile.template"
        template.write_text(template.read_text(encoding="utf-8") + "RUN true\n", "utf-8")
        assert dockerpkg("-c", config, "update", child, site.tree).status == 0
        assert dockerpkg("-c", config, "build", "--quiet", site.tree).status == 0
        child_plan = json.loads(dockerpkg("-c", config, "plan", "--json", site.tree).out)
        own = next(i for i in child_plan["images"] if i["name"] == child)["own_definition"]
        labels = docker_client.images.get(site.label("child", "1.0-s1")).labels or {}
        assert labels == {**labels, "org.dockerpkg.definition": own}
        assert "org.dockerpkg.definition.own" not in labels
        assert root in {i["name"] for i in plan["images"]}
