"""A published version never changes content: saved plans are checked against the registry
again before they are applied, and no push goes over a version tag holding another image.
Real daemon, real registry."""

from __future__ import annotations

from collections.abc import Callable

import docker
import pytest

from tests.integration.test_build import FROM_BASE, Outcome, Site, SiteFactory
from tests.support.trees import write_image

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("isolated_home")]

Run = Callable[..., Outcome]


def test_saved_plan_applied_after_a_build_builds_and_pushes_nothing(
    make_site: SiteFactory, dockerpkg: Run
) -> None:
    site: Site = make_site()
    for short, depends in (("base", ()), ("app", ("base",))):
        write_image(
            site.tree,
            site.name(short),
            "1.0",
            (
                FROM_BASE
                if short == "base"
                else f'FROM {{{{ "{site.name("base")}" | image_tag }}}}\n'
            )
            + f"RUN echo {short}\n",
            depends=[site.name(d) for d in depends],
        )
    config = site.config()
    saved = site.work / "plan.json"
    planned = dockerpkg("-c", config, "plan", "--out", saved, site.tree)
    assert planned.status == 0, planned.err
    built = dockerpkg("-c", config, "build", site.tree)
    assert built.status == 0, built.err
    digests = {short: site.digest(short, "1.0") for short in ("base", "app")}
    assert None not in digests.values()

    report = site.work / "report.json"
    applied = dockerpkg("-c", config, "apply", "--report", report, saved)
    assert applied.status == 0, applied.err
    assert "Published since the plan was made (not built or pushed):" in applied.out
    for short in ("base", "app"):
        assert f"  {site.label(short, '1.0')}" in applied.out
        assert site.digest(short, "1.0") == digests[short]
    assert "Done: 0 built, 0 verified, 0 published" in applied.out
    data = report.read_text(encoding="utf-8")
    assert site.label("app", "1.0") in data
    assert '"steps": []' in data


def test_saved_plan_with_one_image_published_since_pulls_it_for_its_child(
    make_site: SiteFactory, dockerpkg: Run, docker_client: docker.DockerClient
) -> None:
    site: Site = make_site()
    base, app = site.name("base"), site.name("app")
    write_image(site.tree, base, "1.0", FROM_BASE + "RUN echo base\n")
    write_image(
        site.tree,
        app,
        "1.0",
        f'FROM {{{{ "{base}" | image_tag }}}}\nRUN echo app\n',
        depends=[base],
    )
    config = site.config()
    saved = site.work / "plan.json"
    assert dockerpkg("-c", config, "plan", "--out", saved, site.tree).status == 0
    assert dockerpkg("-c", config, "build", "--select", f"*{base}:*", site.tree).status == 0
    published = site.digest("base", "1.0")
    # The daemon no longer has it: the child's build needs it pulled from the registry.
    docker_client.images.remove(site.label("base", "1.0"))

    applied = dockerpkg("-c", config, "apply", saved)
    assert applied.status == 0, applied.err
    assert f"  {site.label('base', '1.0')}" in applied.out
    assert "Done: 1 built, 1 verified, 1 published" in applied.out
    assert site.digest("base", "1.0") == published
    assert site.digest("app", "1.0") is not None


def test_no_push_over_a_version_published_with_other_content(
    make_site: SiteFactory, dockerpkg: Run, docker_client: docker.DockerClient
) -> None:
    site: Site = make_site()
    name = site.name("web")
    write_image(site.tree, name, "1.0", FROM_BASE + "RUN echo first > /f\n")
    config = site.config()
    assert dockerpkg("-c", config, "build", site.tree).status == 0
    first = site.digest("web", "1.0")
    assert first is not None
    # Same version, other content, and the daemon lost the image: --no-pull rebuilds it
    # (as docker-pkg would, pushing it over the published one).
    template = site.tree / name / "Dockerfile.template"
    template.write_text(FROM_BASE + "RUN echo second > /f\n", encoding="utf-8")
    docker_client.images.remove(site.label("web", "1.0"))
    run = dockerpkg("-c", config, "build", "--no-pull", site.tree)
    assert run.status == 1, run.err
    assert (
        f"publish {name}: {site.label('web', '1.0')} is already published with other content "
        "(image sha256:"
    ) in run.out
    assert (
        "a published version is never pushed over; give the image a new version "
        f"(dockerpkg update {name})"
    ) in run.out
    assert site.digest("web", "1.0") == first
    assert site.digest("web", "latest") == first
