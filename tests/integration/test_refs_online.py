"""refs --online against a real registry: a reference moved to a version not published yet
would break its job, so it is reported not_published and left alone; once published, the
references move to it, a digest to the digest the registry gives."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.integration.test_build import FROM_BASE, Outcome, Site
from tests.integration.test_registry_cache import new_version
from tests.support.trees import write_image

pytestmark = pytest.mark.usefixtures("isolated_home")


def states(outcome: Outcome) -> list[tuple[int, str, str | None]]:
    data = json.loads(outcome.out)
    return [
        (u["line"], u["state"], u["edit"]["replacement"] if u["edit"] else None)
        for u in data["uses"]
    ]


def test_not_published_then_moved(
    make_site: Callable[..., Site], dockerpkg: Callable[..., Outcome]
) -> None:
    site = make_site()
    image = write_image(site.tree, site.name("app"), "1.0", FROM_BASE)
    config = site.config()
    assert dockerpkg("-c", config, "build", site.tree).status == 0
    old_digest = site.digest("app", "1.0")
    assert old_digest is not None
    new_version(image.path, image.name, "1.1")
    uses = site.work / "uses"
    uses.mkdir()
    job = uses / "job.yaml"
    job.write_text(
        f"image: {site.label('app', '1.0')}\npinned: {site.label('app', '1.0')}@{old_digest}\n",
        encoding="utf-8",
    )
    refs = ("-c", config, "refs", "--json", site.tree, uses)
    offline = dockerpkg(*refs)
    assert states(offline) == [(1, "outdated", "1.1"), (2, "outdated", None)]
    online = dockerpkg(*refs, "--online")
    assert online.status == 0, online.text
    assert [s[:2] for s in states(online)] == [(1, "not_published"), (2, "not_published")]
    assert "1.1 is not in the registry yet" in online.out
    nothing = dockerpkg("-c", config, "refs", "--online", "--apply", site.tree, uses)
    assert nothing.status == 0, nothing.text
    assert site.label("app", "1.0") in job.read_text(encoding="utf-8")

    assert dockerpkg("-c", config, "build", site.tree).status == 0
    new_digest = site.digest("app", "1.1")
    moved = dockerpkg("-c", config, "refs", "--online", "--apply", site.tree, uses)
    assert moved.status == 0, moved.text
    assert job.read_text(encoding="utf-8") == (
        f"image: {site.label('app', '1.1')}\npinned: {site.label('app', '1.1')}@{new_digest}\n"
    )
