"""All-or-nothing publishing holds together against a real registry and daemon: staged and
local images are reused only when their build identity is the tree's, promotion moves the
digest the run staged, a staged parent serves a fresh daemon, and later runs remove what a
promotion left under staging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import attrs
import docker
import pytest

from dockerpkg import api
from dockerpkg.core.definition import IDENTITY_LABEL
from dockerpkg.core.plan import BuildOptions, Op, PublishMode, Step, StepKey
from dockerpkg.core.report import Outcome, Report
from dockerpkg.effects.registry.transport import RetryPolicy
from tests.integration.test_all_or_nothing import (
    ALL,
    PASS,
    built,
    failing_while,
    latest_on,
    staging_tags,
    write_child,
)
from tests.integration.test_build import DOCKERPKG, FROM_BASE, NAMESPACE, Site, read_json
from tests.integration.test_build import Outcome as Run
from tests.support import services
from tests.support.faulty_registry import start_faulty_registry
from tests.support.processes import wait_for_line
from tests.support.trees import write_image

pytestmark = pytest.mark.usefixtures("isolated_home")


def write_chain(site: Site, flag: Path) -> None:
    """root -> leaf; leaf's test.sh fails while FLAG exists."""
    write_image(site.tree, site.name("root"), "1.0", FROM_BASE, files={"test.sh": PASS})
    write_child(site, "leaf", "root", failing_while(flag))


def edit_template(site: Site, short: str, line: str) -> None:
    """Add LINE to SHORT's template, without a new version."""
    template = site.tree / site.name(short) / "Dockerfile.template"
    template.write_text(template.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")


def published_identity(site: Site, short: str, tag: str) -> str | None:
    with site.registry_client() as client:
        labels = client.image_labels(f"{NAMESPACE}/{site.name(short)}", tag) or {}
    return labels.get(IDENTITY_LABEL)


def planned_identities(site: Site, config: Path) -> dict[str, str | None]:
    workspace, observed, _ = api.load_and_observe(
        str(site.tree), str(config), dict(os.environ), publish=PublishMode.ALL_OR_NOTHING
    )
    plan = api.build_plan(workspace, observed, BuildOptions(publish=PublishMode.ALL_OR_NOTHING))
    return {image.name: image.definition for image in plan.images}


def failed_run(site: Site, config: Path, flag: Path, dockerpkg: Callable[..., Run]) -> None:
    """An all_or_nothing run whose leaf fails its test: root staged, nothing moved."""
    flag.write_text("", encoding="utf-8")
    failed = dockerpkg("-c", config, "build", *ALL, site.tree)
    assert failed.status == 1, failed.text
    assert "Nothing moved" in failed.out
    assert staging_tags(site, "root") == ["1.0"]
    flag.unlink()


def test_children_staged_on_a_parent_fixed_since_are_built_again(
    make_site: Callable[..., Site], dockerpkg: Callable[..., Run]
) -> None:
    site = make_site()
    flag = site.work / "broken"
    write_image(site.tree, site.name("root"), "1.0", FROM_BASE, files={"test.sh": PASS})
    write_child(site, "mid", "root", PASS)
    write_child(site, "leaf", "mid", failing_while(flag))
    config = site.config()
    failed_run(site, config, flag, dockerpkg)
    assert staging_tags(site, "mid") == ["1.0"]

    # The parent is fixed without a new version (it was never published): mid, staged on
    # the old root, must not be promoted; the plan says so.
    edit_template(site, "root", "RUN echo fixed > /fixed")
    plan = dockerpkg("-c", config, "plan", *ALL, "--json", site.tree)
    assert plan.status == 0, plan.text
    steps = json.loads(plan.out)["steps"]
    builds = {s["image"]: s["reason"] for s in steps if s["op"] == "build"}
    assert builds == {site.name(s): "identity_changed" for s in ("root", "mid", "leaf")}
    assert not any(s["reason"] == "staged_in_earlier_run" for s in steps)

    report = site.work / "report.json"
    fixed = dockerpkg("-c", config, "build", *ALL, "--report", report, site.tree)
    assert fixed.status == 0, fixed.text
    assert built(report) == sorted(site.name(s) for s in ("root", "mid", "leaf"))
    identities = planned_identities(site, config)
    for short in ("root", "mid", "leaf"):
        assert published_identity(site, short, "1.0") == identities[site.name(short)], short
        assert latest_on(site, short, "1.0"), short
        assert staging_tags(site, short) == [], short


def test_a_template_edited_after_a_failed_run_is_built_again(
    make_site: Callable[..., Site], dockerpkg: Callable[..., Run]
) -> None:
    site = make_site()
    flag = site.work / "broken"
    write_chain(site, flag)
    config = site.config()
    failed_run(site, config, flag, dockerpkg)

    # The daemon holds the failed run's leaf; its template is edited without a new version.
    edit_template(site, "leaf", "RUN echo edited > /edited")
    report = site.work / "report.json"
    again = dockerpkg("-c", config, "build", *ALL, "--report", report, site.tree)
    assert again.status == 0, again.text
    steps = {(s["op"], s["image"]): s for s in read_json(report)["steps"]}
    assert built(report) == [site.name("leaf")]
    assert steps["build", site.name("leaf")]["reason"] == "identity_changed"
    assert steps["promote", site.name("root")]["reason"] == "staged_in_earlier_run"
    identities = planned_identities(site, config)
    for short in ("root", "leaf"):
        assert published_identity(site, short, "1.0") == identities[site.name(short)], short


class PushesOverStaging:
    """A listener that pushes another image to root's staging tag as promotion starts:
    someone else's push, after the run staged and verified its own."""

    def __init__(self, site: Site, client: docker.DockerClient, other: str) -> None:
        self.site, self.client, self.other = site, client, other
        self.pushed: str | None = None

    def task_started(self, key: StepKey) -> None:
        if str(key) == f"promote:{self.site.name('root')}" and self.pushed is None:
            target = self.site.registry.ref(
                f"{NAMESPACE}/dockerpkg-staging/{self.site.name('root')}:1.0"
            )
            services.tag_image(self.client, self.other, target)
            services.push_image(self.client, target, self.site.registry)
            with self.site.registry_client() as registry:
                self.pushed = registry.manifest_digest(
                    f"{NAMESPACE}/dockerpkg-staging/{self.site.name('root')}", "1.0"
                )

    def task_finished(self, result: object) -> None:
        pass


def test_promotion_moves_the_digest_the_run_staged(
    make_site: Callable[..., Site],
    docker_client: docker.DockerClient,
    busybox_base: str,
    tmp_path: Path,
) -> None:
    site = make_site()
    write_image(site.tree, site.name("root"), "1.0", FROM_BASE + "RUN echo r > /r\n")
    config = site.config()
    env = dict(os.environ)
    workspace, observed, credentials = api.load_and_observe(
        str(site.tree), str(config), env, publish=PublishMode.ALL_OR_NOTHING
    )
    plan = api.build_plan(workspace, observed, BuildOptions(publish=PublishMode.ALL_OR_NOTHING))
    listener = PushesOverStaging(site, docker_client, busybox_base)
    result = api.apply_build_plan(
        plan, workspace, env, credentials, run_dir=tmp_path / "run", listener=listener
    )
    staged = result.of(Op.STAGE, site.name("root"))
    promoted = result.of(Op.PROMOTE, site.name("root"))
    assert staged is not None
    assert promoted is not None
    assert staged.outcome is Outcome.SUCCEEDED
    assert promoted.outcome is Outcome.SUCCEEDED
    assert listener.pushed is not None
    assert listener.pushed != staged.detail
    # The version tag and latest hold what the run pushed and verified, not the intruder.
    assert site.digest("root", "1.0") == staged.detail
    assert site.digest("root", "latest") == staged.detail


def test_a_rerun_on_a_fresh_daemon_builds_on_the_staged_parent(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Run],
    docker_client: docker.DockerClient,
) -> None:
    site = make_site()
    flag = site.work / "broken"
    write_chain(site, flag)
    config = site.config()
    failed_run(site, config, flag, dockerpkg)

    # A fresh daemon: none of the run's images is left (the base image is).
    staged_root = site.registry.ref(f"{NAMESPACE}/dockerpkg-staging/{site.name('root')}:1.0")
    for label in (site.label("leaf", "1.0"), site.label("root", "1.0"), staged_root):
        docker_client.api.remove_image(label, force=True)
    report = site.work / "report.json"
    again = dockerpkg("-c", config, "build", *ALL, "--report", report, site.tree)
    assert again.status == 0, again.text
    steps = {(s["op"], s["image"]): s for s in read_json(report)["steps"]}
    assert steps["pull", site.name("root")]["reason"] == "staged_dependency"
    assert built(report) == [site.name("leaf")]
    for short in ("root", "leaf"):
        assert sorted(site.tags(short)) == ["1.0", "latest"], short
        assert staging_tags(site, short) == [], short


def test_a_later_run_removes_what_a_promotion_left_staged(
    make_site: Callable[..., Site], dockerpkg: Callable[..., Run]
) -> None:
    site = make_site()
    write_image(site.tree, site.name("root"), "1.0", FROM_BASE + "RUN echo r > /r\n")
    config = site.config()
    done = dockerpkg("-c", config, "build", *ALL, site.tree)
    assert done.status == 0, done.text
    # What a run killed after moving the tags, before deleting the staged manifest, leaves:
    # the version's manifest under its staging reference too.
    own = f"{NAMESPACE}/{site.name('root')}"
    staging = f"{NAMESPACE}/dockerpkg-staging/{site.name('root')}"
    with site.registry_client() as client:
        assert client.promote(own, staging, "1.0") == site.digest("root", "1.0")
    assert staging_tags(site, "root") == ["1.0"]

    plan = dockerpkg("-c", config, "plan", *ALL, site.tree)
    assert "1 staged to remove" in plan.out, plan.text
    report = site.work / "report.json"
    again = dockerpkg("-c", config, "build", *ALL, "--report", report, site.tree)
    assert again.status == 0, again.text
    unstaged = [s for s in read_json(report)["steps"] if s["op"] == "unstage"]
    assert [(s["image"], s["outcome"]) for s in unstaged] == [(site.name("root"), "succeeded")]
    assert staging_tags(site, "root") == []
    assert sorted(site.tags("root")) == ["1.0", "latest"]
    quiet = dockerpkg("-c", config, "plan", *ALL, site.tree)
    assert "Plan: nothing to do." in quiet.out, quiet.text


def test_a_failed_latest_says_the_version_moved_and_a_later_run_finishes(
    make_site: Callable[..., Site], dockerpkg: Callable[..., Run], tmp_path: Path
) -> None:
    site = make_site("none")
    # Every attempt at putting root's `latest` fails, in this run only.
    latest = rf"PUT /v2/{NAMESPACE}/{site.name('root')}/manifests/latest"
    failing = (site.registry.host, latest, RetryPolicy().attempts)
    with start_faulty_registry(tmp_path, "proxy", 500, proxy=failing) as proxy:
        seen = attrs.evolve(site.registry, host=proxy.host, url=f"http://{proxy.host}")
        site = attrs.evolve(site, registry=seen)
        write_image(site.tree, site.name("root"), "1.0", FROM_BASE + "RUN echo r > /r\n")
        config = site.config()
        failed = dockerpkg("-c", config, "build", *ALL, site.tree)
        assert failed.status == 1, failed.text
        # The version tag exists: the report says so, never "Nothing moved".
        assert site.tags("root") == ["1.0"]
        assert "Nothing moved" not in failed.out, failed.text
        assert f"Version tag moved, latest not: {site.name('root')}." in failed.out
        assert staging_tags(site, "root") == ["1.0"]
        assert sum(1 for r in proxy.requests() if r == latest) == RetryPolicy().attempts

        # The next run moves latest and removes what the promotion left staged.
        plan = dockerpkg("-c", config, "plan", *ALL, site.tree)
        assert "1 latest to move" in plan.out, plan.text
        assert "1 staged to remove" in plan.out, plan.text
        again = dockerpkg("-c", config, "build", *ALL, site.tree)
        assert again.status == 0, again.text
        assert sorted(site.tags("root")) == ["1.0", "latest"]
        assert latest_on(site, "root", "1.0")
        assert staging_tags(site, "root") == []


def test_sigterm_during_promotion_waits_for_the_set(
    make_site: Callable[..., Site], tmp_path: Path
) -> None:
    site = make_site("none")
    # Each version tag put takes a second: the promotions (parents first) take three.
    versions = rf"PUT /v2/{NAMESPACE}/{site.prefix}-[a-z]+/manifests/1\.0"
    never = (site.registry.host, "(?!)", 0)
    with start_faulty_registry(tmp_path, "proxy", proxy=never, slow=(versions, 1.0)) as proxy:
        site = attrs.evolve(
            site, registry=attrs.evolve(site.registry, host=proxy.host, url=f"http://{proxy.host}")
        )
        write_image(site.tree, site.name("root"), "1.0", FROM_BASE + "RUN echo r > /r\n")
        write_child(site, "mid", "root")
        write_child(site, "leaf", "mid")
        config = site.config()
        process = subprocess.Popen(
            [str(DOCKERPKG), "-c", str(config), "build", *ALL, str(site.tree)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for_line(process, rf"start\s+promote\s+{site.name('root')}")
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 143, out + err
        assert "Promoted all 3" in out, out + err
        for short in ("root", "mid", "leaf"):
            assert sorted(site.tags(short)) == ["1.0", "latest"], short
            assert staging_tags(site, short) == [], short


class Quiet:
    def task_started(self, key: StepKey) -> None:
        pass

    def task_finished(self, result: object) -> None:
        pass


def other_manifest_staged(site: Site, client: docker.DockerClient, image: str) -> str:
    """Push IMAGE to root's staging repository under another tag; its manifest digest."""
    repository = f"{NAMESPACE}/dockerpkg-staging/{site.name('root')}"
    target = site.registry.ref(f"{repository}:other")
    services.tag_image(client, image, target)
    services.push_image(client, target, site.registry)
    with site.registry_client() as registry:
        digest = registry.manifest_digest(repository, "other")
    assert digest is not None
    return digest


def held_to(step: Step, root: str, op: Op, digest: str) -> Step:
    """STEP, when it is ROOT's step OP of an earlier run's staging, held to DIGEST instead."""
    if step.op is not op or step.image != root:
        return step
    if op is Op.PROMOTE and step.detail:
        return attrs.evolve(step, detail=f"{step.detail.partition('@')[0]}@{digest}")
    if op is Op.PULL and step.label:
        return attrs.evolve(step, label=f"{step.label.partition('@')[0]}@{digest}")
    return step


def applied_with_root_held_to(
    site: Site, config: Path, op: Op, digest: str, run_dir: Path
) -> Report:
    """Plan the rerun, point its step OP of root's earlier staging at DIGEST (a hostile
    plan file), and apply it."""
    env = dict(os.environ)
    publish = PublishMode.ALL_OR_NOTHING
    workspace, observed, credentials = api.load_and_observe(
        str(site.tree), str(config), env, publish=publish
    )
    plan = api.build_plan(workspace, observed, BuildOptions(publish=publish))
    root = site.name("root")
    steps = [held_to(step, root, op, digest) for step in plan.steps]
    assert steps != list(plan.steps)
    edited = attrs.evolve(plan, steps=tuple(steps))
    return api.apply_build_plan(
        edited, workspace, env, credentials, run_dir=run_dir, listener=Quiet()
    )


def root_staged_beside_another(
    site: Site,
    dockerpkg: Callable[..., Run],
    docker_client: docker.DockerClient,
    busybox_base: str,
) -> tuple[Site, Path, str]:
    """SITE after a failed run left root staged, with another manifest (busybox) pushed to
    root's staging repository: the site, its config and that manifest's digest."""
    flag = site.work / "broken"
    write_chain(site, flag)
    config = site.config()
    failed_run(site, config, flag, dockerpkg)
    return site, config, other_manifest_staged(site, docker_client, busybox_base)


def test_a_plan_naming_another_staged_manifest_does_not_promote_it(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Run],
    docker_client: docker.DockerClient,
    busybox_base: str,
    tmp_path: Path,
) -> None:
    site, config, other = root_staged_beside_another(
        make_site(), dockerpkg, docker_client, busybox_base
    )

    result = applied_with_root_held_to(site, config, Op.PROMOTE, other, tmp_path / "run")
    promoted = result.of(Op.PROMOTE, site.name("root"))
    assert promoted is not None
    assert promoted.outcome is Outcome.FAILED
    assert "refused" in (promoted.error or ""), promoted.error
    assert site.tags("root") == []


def test_a_plan_naming_another_staged_parent_does_not_build_on_it(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Run],
    docker_client: docker.DockerClient,
    busybox_base: str,
    tmp_path: Path,
) -> None:
    site, config, other = root_staged_beside_another(
        make_site(), dockerpkg, docker_client, busybox_base
    )
    # A fresh daemon: the leaf's build pulls its staged parent.
    staged_root = site.registry.ref(f"{NAMESPACE}/dockerpkg-staging/{site.name('root')}:1.0")
    for label in (site.label("leaf", "1.0"), site.label("root", "1.0"), staged_root):
        docker_client.api.remove_image(label, force=True)

    result = applied_with_root_held_to(site, config, Op.PULL, other, tmp_path / "run")
    pulled = result.of(Op.PULL, site.name("root"))
    assert pulled is not None
    assert pulled.outcome is Outcome.FAILED
    assert "refused" in (pulled.error or ""), pulled.error
    built_leaf = result.of(Op.BUILD, site.name("leaf"))
    assert built_leaf is not None
    assert built_leaf.outcome is not Outcome.SUCCEEDED
    assert site.tags("leaf") == []
    assert site.tags("root") == []
