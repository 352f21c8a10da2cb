"""All-or-nothing publishing against a real registry and daemon: nothing users pull by tag
moves until every image of the run is built, verified and staged; a rerun finishes the job."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from dockerpkg import api
from dockerpkg.core.plan import BuildOptions, Op, PublishMode, StepKey
from dockerpkg.core.report import Outcome
from dockerpkg.effects.registry import RegistryError
from tests.integration.test_build import DOCKERPKG, FROM_BASE, NAMESPACE, Site, read_json
from tests.integration.test_build import Outcome as Run
from tests.support.processes import wait_for_line
from tests.support.trees import write_image

pytestmark = pytest.mark.usefixtures("isolated_home")
ALL = ("--publish", "all_or_nothing")
PASS, FAIL = "#!/bin/sh\nexit 0\n", "#!/bin/sh\necho broken; exit 1\n"


def write_child(site: Site, short: str, parent: str, test: str | None = None) -> None:
    """Image SHORT built on the tree's image PARENT, with a layer of its own."""
    write_image(
        site.tree,
        site.name(short),
        "1.0",
        f'FROM {{{{ "{site.name(parent)}" | image_tag }}}}\nRUN echo {short} > /{short}\n',
        depends=[site.name(parent)],
        files={} if test is None else {"test.sh": test},
    )


def write_tree(site: Site, bad_test: str = PASS) -> None:
    """root -> mid -> (ok, bad): three levels; bad's test.sh is BAD_TEST."""
    write_image(site.tree, site.name("root"), "1.0", FROM_BASE, files={"test.sh": PASS})
    write_child(site, "mid", "root", PASS)
    for leaf, test in (("ok", PASS), ("bad", bad_test)):
        write_child(site, leaf, "mid", test)


SHORTS = ("root", "mid", "ok", "bad")


def bump(site: Site, version: str) -> None:
    """A new changelog entry on every image (as `update --all` writes one)."""
    for short in SHORTS:
        changelog = site.tree / site.name(short) / "changelog"
        entry = (
            f"{site.name(short)} ({version}) wikimedia; urgency=medium\n\n  * Next.\n\n"
            " -- Test Maintainer <maintainer@example.org>  Thu, 26 Nov 2026 11:00:00 +0000\n\n"
        )
        changelog.write_text(entry + changelog.read_text(encoding="utf-8"), encoding="utf-8")


def staging_tags(site: Site, short: str) -> list[str]:
    with site.registry_client() as client:
        try:
            return client.tags(f"{NAMESPACE}/dockerpkg-staging/{site.name(short)}")
        except RegistryError:
            return []  # the repository is gone with its last manifest


def latest_on(site: Site, short: str, tag: str) -> bool:
    return site.digest(short, "latest") == site.digest(short, tag)


def built(report: Path) -> list[str]:
    return sorted(s["image"] for s in read_json(report)["steps"] if s["op"] == "build")


def failing_while(flag: Path) -> str:
    """A test.sh failing while FLAG exists: fixed without changing the build context (the
    image's identity), which test.sh is part of."""
    return f"#!/bin/sh\nif [ -e {flag} ]; then echo broken; exit 1; fi\n"


def test_a_failing_leaf_moves_nothing_and_the_fixed_tree_moves_everything(
    make_site: Callable[..., Site], dockerpkg: Callable[..., Run]
) -> None:
    site = make_site()
    flag = site.work / "broken"
    write_tree(site, failing_while(flag))
    config = site.config()
    first = dockerpkg("-c", config, "build", site.tree)
    assert first.status == 0, first.text
    before = {short: site.digest(short, "1.0") for short in SHORTS}

    bump(site, "1.1")
    flag.write_text("", encoding="utf-8")
    failed = dockerpkg("-c", config, "build", *ALL, site.tree)
    assert failed.status == 1, failed.text
    assert "Nothing moved" in failed.out
    for short in SHORTS:
        assert sorted(site.tags(short)) == ["1.0", "latest"], short
        assert site.digest(short, "latest") == before[short], short
    assert staging_tags(site, "root") == ["1.1"]  # staged, waiting
    assert staging_tags(site, "bad") == []

    flag.unlink()
    report = site.work / "report.json"
    fixed = dockerpkg("-c", config, "build", *ALL, "--report", report, site.tree)
    assert fixed.status == 0, fixed.text
    # What the failed run staged with the tree's definition is promoted, neither built nor
    # verified again; the leaf (built, not staged) is verified and staged, then all move.
    steps = {(s["op"], s["image"]): s for s in read_json(report)["steps"]}
    assert built(report) == []
    assert ("verify", site.name("bad")) in steps
    for short in ("root", "mid", "ok"):
        assert ("verify", site.name(short)) not in steps
        assert steps["promote", site.name(short)]["reason"] == "staged_in_earlier_run"
    for short in SHORTS:
        assert sorted(site.tags(short)) == ["1.0", "1.1", "latest"], short
        assert latest_on(site, short, "1.1"), short
        assert staging_tags(site, short) == [], short
    assert "Promoted all 4" in fixed.out


class StopsRegistryBeforePromotions:
    """A listener that stops the registry as the first promotion starts."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.stopped = False

    def task_started(self, key: StepKey) -> None:
        if str(key).startswith("promote:") and not self.stopped:
            self.stopped = True
            self.site.registry.stop()

    def task_finished(self, result: object) -> None:
        pass


def test_the_registry_gone_before_the_tag_moves_then_a_rerun_without_builds(
    make_site: Callable[..., Site], dockerpkg: Callable[..., Run], tmp_path: Path
) -> None:
    site = make_site()
    write_tree(site)
    config = site.config()
    env = dict(os.environ)
    workspace, observed, credentials = api.load_and_observe(
        str(site.tree), str(config), env, publish=PublishMode.ALL_OR_NOTHING
    )
    plan = api.build_plan(workspace, observed, BuildOptions(publish=PublishMode.ALL_OR_NOTHING))
    listener = StopsRegistryBeforePromotions(site)
    result = api.apply_build_plan(
        plan, workspace, env, credentials, run_dir=tmp_path / "run", listener=listener
    )
    site.registry.start()
    assert listener.stopped
    promotions = [o for o in result.outcomes if o.step.op is Op.PROMOTE]
    assert promotions
    assert all(o.outcome is not Outcome.SUCCEEDED for o in promotions)
    assert all(o.outcome is Outcome.SUCCEEDED for o in result.outcomes if o.step.op is Op.STAGE)
    for short in SHORTS:
        assert site.tags(short) == [], short  # nothing users pull exists yet

    report = site.work / "report.json"
    again = dockerpkg("-c", config, "build", *ALL, "--report", report, site.tree)
    assert again.status == 0, again.text
    assert built(report) == []
    for short in SHORTS:
        assert sorted(site.tags(short)) == ["1.0", "latest"], short


def test_ctrl_c_mid_run_moves_nothing(make_site: Callable[..., Site]) -> None:
    site = make_site()
    write_tree(site)
    slow = site.tree / site.name("bad") / "Dockerfile.template"
    slow.write_text(slow.read_text(encoding="utf-8") + "RUN sleep 3\n", encoding="utf-8")
    config = site.config()
    process = subprocess.Popen(
        [str(DOCKERPKG), "-c", str(config), "build", *ALL, str(site.tree)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_line(process, rf"start\s+build\s+{site.name('bad')}")
        process.send_signal(signal.SIGINT)  # no new step starts; running ones finish
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out + err
    assert "Nothing moved" in out
    for short in SHORTS:
        assert site.tags(short) == [], short


@pytest.mark.parametrize(
    ("auth", "engine"), [("none", "buildkit"), ("token", "buildkit"), ("htpasswd", "classic")]
)
def test_promotion_under_other_registry_auth(
    make_site: Callable[..., Site], dockerpkg: Callable[..., Run], auth: str, engine: str
) -> None:
    """Anonymous and token registries, and the classic builder: the blobs reach the image's
    repository (mounted, or copied where the token covers one repository only) and the
    staging goes."""
    site = make_site(auth)
    write_image(site.tree, site.name("root"), "1.0", FROM_BASE + "RUN echo r > /r\n")
    write_child(site, "mid", "root")
    config = site.config()
    config.write_text(
        config.read_text(encoding="utf-8") + f"build_engine: {engine}\n", encoding="utf-8"
    )
    done = dockerpkg("-c", config, "build", *ALL, site.tree)
    assert done.status == 0, done.text
    for short in ("root", "mid"):
        assert sorted(site.tags(short)) == ["1.0", "latest"], short
        assert latest_on(site, short, "1.0"), short
        assert staging_tags(site, short) == [], short
