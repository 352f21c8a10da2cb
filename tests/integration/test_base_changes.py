"""Base images that move under the same tag, against a real registry and daemon: what builds
record, what `plan` reports, what `update --changed-bases` writes and what is rebuilt; the
standard labels under both builders."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
import requests

from dockerpkg.core.bases import BASES_LABEL
from tests.integration.test_build import NAMESPACE, Outcome, Site, read_json, steps_by_key
from tests.support import services
from tests.support.trees import BASE_IMAGE, write_config, write_image

SECOND = "base/second:1.0"
pytestmark = pytest.mark.usefixtures("isolated_home")


def push_second_base(client: docker.DockerClient, busybox: str, site: Site, mark: str) -> str:
    """Build the second base (busybox with a marker file) and push it under the same tag."""
    ref = site.registry.ref(SECOND)
    dockerfile = f"FROM {busybox}\nRUN echo {mark} > /base-mark\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ref, rm=True, pull=False)
    services.push_image(client, ref, site.registry)
    return ref


def second_digest(site: Site) -> str:
    with site.registry_client() as client:
        digest = client.manifest_digest(*SECOND.split(":"))
    assert digest is not None
    return digest


def write_tree(site: Site) -> Path:
    """d on busybox; a -> b -> c on the second base."""
    write_image(site.tree, site.name("a"), "1.0", 'FROM {{ "second" | image_tag }}\n')
    for child, parent in (("b", "a"), ("c", "b")):
        write_image(
            site.tree,
            site.name(child),
            "1.0",
            f'FROM {{{{ "{site.name(parent)}" | image_tag }}}}\nRUN echo {child} > /{child}\n',
            depends=[site.name(parent)],
        )
    write_image(site.tree, site.name("d"), "1.0", 'FROM {{ "busybox" | image_tag }}\n')
    return site.tree


def config_with_bases(site: Site, **extra: str) -> Path:
    path = write_config(
        site.work / "config.yaml",
        site.registry,
        namespace=NAMESPACE,
        username=site.credentials.username,
        password=site.credentials.password,
        extra=extra,
    )
    text = path.read_text(encoding="utf-8").replace(
        "base_images:\n", f"base_images:\n  - {site.registry.ref(SECOND)}\n", 1
    )
    path.write_text(text, encoding="utf-8")
    return path


def published_labels(site: Site, short: str) -> dict[str, str]:
    with site.registry_client() as client:
        found = client.image_labels(f"{NAMESPACE}/{site.name(short)}", "1.0")
    assert found is not None
    return found


ENTRY = re.compile(
    r"(?P<name>\S+) \((?P<version>[^)]+)\) wikimedia; urgency=high\n\n(?P<body>(?:   .*\n)+)\n"
    r" -- Release Bot <bot@example\.org>  \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\n\n"
)


def new_entry(changelog: Path) -> tuple[str, str]:
    """The version and reason lines of a changelog's top entry, checked to be update's format."""
    match = ENTRY.match(changelog.read_text(encoding="utf-8"))
    assert match is not None, changelog.read_text(encoding="utf-8")
    return match["version"], match["body"]


def test_a_moved_base_is_found_bumped_and_rebuilt_exactly(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    busybox_base: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEBFULLNAME", "Release Bot")
    monkeypatch.setenv("DEBEMAIL", "bot@example.org")
    site = make_site()
    push_second_base(docker_client, busybox_base, site, "one")
    first = second_digest(site)
    tree, config = write_tree(site), config_with_bases(site)
    report = site.work / "report.json"
    built = dockerpkg("-c", config, "build", "--report", report, tree)
    assert built.status == 0, built.text

    # What each build recorded: the base it was built on, the published parent it pulled.
    second_ref = site.registry.ref(SECOND)
    assert json.loads(published_labels(site, "a")[BASES_LABEL]) == {second_ref: first}
    assert json.loads(published_labels(site, "b")[BASES_LABEL]) == {}  # a was built in the run
    busybox = json.loads(published_labels(site, "d")[BASES_LABEL])
    assert list(busybox) == [site.registry.ref(BASE_IMAGE)]
    steps = steps_by_key(read_json(report))
    assert steps["build", site.name("a")]["detail"].endswith(f" on {second_ref}@{first}")

    # Nothing moved yet: nothing to report.
    quiet = dockerpkg("-c", config, "plan", "--detailed-exitcode", tree)
    assert quiet.status == 0, quiet.text

    push_second_base(docker_client, busybox_base, site, "two")
    moved = second_digest(site)
    assert moved != first
    found = dockerpkg("-c", config, "plan", "--detailed-exitcode", tree)
    assert found.status == 2, found.text
    assert f"outdated  {site.name('a')}" in found.out
    assert "2 images built on it outdated too" in found.out
    as_json = dockerpkg("-c", config, "plan", "--json", tree)
    findings = json.loads(as_json.out)["findings"]
    assert [
        (f["image"], f["reason"], f["base"], f["recorded"], f["current"]) for f in findings
    ] == [(site.name("a"), "base_changed", second_ref, first, moved)]
    assert findings[0]["below"] == sorted([site.name("b"), site.name("c")])

    # The entries go to exactly the images on the moved base and what is built on them.
    update = dockerpkg("-c", config, "update", "--changed-bases", tree)
    assert update.status == 0, update.text
    a_version, a_reason = new_entry(tree / site.name("a") / "changelog")
    assert a_reason == f"   Rebuild for updated base image second:1.0 ({moved[:19]}…)\n"
    for child in ("b", "c"):
        version, reason = new_entry(tree / site.name(child) / "changelog")
        assert version == a_version
        assert reason == (
            f"   Refresh for update in parent image {site.name('a')}:\n"
            f"   Rebuild for updated base image second:1.0 ({moved[:19]}…)\n"
        )
    untouched = (tree / site.name("d") / "changelog").read_text(encoding="utf-8")
    assert untouched.startswith(f"{site.name('d')} (1.0) ")

    # The next build rebuilds exactly those; then nothing is outdated.
    rebuilt = dockerpkg("-c", config, "build", "--report", report, tree)
    assert rebuilt.status == 0, rebuilt.text
    builds = sorted(s["image"] for s in read_json(report)["steps"] if s["op"] == "build")
    assert builds == sorted(site.name(n) for n in ("a", "b", "c"))
    after = dockerpkg("-c", config, "plan", "--detailed-exitcode", tree)
    assert after.status == 0, after.text


@pytest.mark.parametrize("engine", ["buildkit", "classic"])
def test_standard_labels_on_built_images(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    engine: str,
) -> None:
    site = make_site()
    image = write_image(site.tree, site.name("web"), "2.1-3", 'FROM {{ "busybox" | image_tag }}\n')
    config = write_config(
        site.work / "config.yaml",
        site.registry,
        namespace=NAMESPACE,
        username=site.credentials.username,
        password=site.credentials.password,
        extra={"build_engine": engine, "source_url": "https://git.example.org/images.git"},
    )
    built = dockerpkg("-c", config, "build", site.tree)
    assert built.status == 0, built.text
    label = site.label("web", "2.1-3")
    labels = docker_client.images.get(label).labels
    oci = "org.opencontainers.image."
    assert labels[oci + "version"] == "2.1-3"
    assert labels[oci + "title"] == image.name
    assert labels[oci + "created"] == "2026-11-26T10:00:00+00:00"  # the changelog's date
    assert labels[oci + "source"] == "https://git.example.org/images.git"
    assert oci + "revision" not in labels  # the tree is no git checkout
    assert set(json.loads(labels[BASES_LABEL])) == {site.registry.ref(BASE_IMAGE)}
    history = docker_client.api.history(label)  # type: ignore[no-untyped-call]
    label_steps = [h for h in history if "LABEL" in (h.get("CreatedBy") or "")]
    # The classic builder commits every label in one step; BuildKit sets them on export.
    assert len(label_steps) == (1 if engine == "classic" else 0)


def test_a_pinned_plan_builds_on_the_digest_it_saw(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    busybox_base: str,
) -> None:
    site = make_site()
    push_second_base(docker_client, busybox_base, site, "one")
    first = second_digest(site)
    write_image(site.tree, site.name("a"), "1.0", 'FROM {{ "second" | image_tag }}\n')
    config = config_with_bases(site, pin_bases="true")
    saved = site.work / "plan.json"
    planned = dockerpkg("-c", config, "plan", "--out", saved, site.tree)
    assert planned.status == 0, planned.text
    second_ref = site.registry.ref(SECOND)
    [image] = read_json(saved)["images"]
    assert image["dockerfile"] == f"FROM {second_ref}@{first}"
    assert image["pins"] == {second_ref: first}

    # The tag moves between plan and apply: the build still uses what the plan saw.
    push_second_base(docker_client, busybox_base, site, "two")
    assert second_digest(site) != first
    applied = dockerpkg("-c", config, "apply", saved)
    assert applied.status == 0, applied.text
    label = site.label("a", "1.0")
    assert json.loads(docker_client.images.get(label).labels[BASES_LABEL]) == {second_ref: first}
    mark = docker_client.containers.run(label, ["cat", "/base-mark"], remove=True)
    assert mark == b"one\n"
    assert json.loads(published_labels(site, "a")[BASES_LABEL]) == {second_ref: first}


def test_a_base_missing_from_the_registry_is_said(
    make_site: Callable[..., Site], dockerpkg: Callable[..., Outcome]
) -> None:
    """The second base is configured but not in the registry (deleted): plan says so, with
    pin_bases off."""
    site = make_site()
    tree, config = write_tree(site), config_with_bases(site)
    assert "pin_bases" not in config.read_text(encoding="utf-8")
    planned = dockerpkg("-c", config, "plan", tree)
    assert planned.status == 0, planned.text
    assert (
        f"note: base image {site.registry.ref(SECOND)} is not in its registry (deleted or "
        f"renamed?); images on it: {site.name('a')}; building {site.name('a')} will fail to "
        "pull it"
    ) in planned.out
    assert "busybox" not in "".join(
        line for line in planned.out.splitlines() if "not in its registry" in line
    )


MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def make_tag_an_index(site: Site, platform_digest: str, arch: str) -> str:
    """Put a manifest list holding the manifest PLATFORM_DIGEST (for linux/ARCH) under the
    second base's tag, as when a base starts being published for several platforms; its
    digest is made to sort after the platform manifest's (padding in the JSON), so the
    smallest digest the daemon holds is not the tag's. Returns the list's digest."""
    repository, tag = SECOND.split(":")
    registry = site.registry
    auth = (registry.username or "", registry.password or "")
    url = f"{registry.url}/v2/{repository}/manifests"
    got = requests.get(
        f"{url}/{platform_digest}",
        headers={"Accept": MANIFEST},
        auth=auth,
        verify=registry.verify,
        timeout=30,
    )
    got.raise_for_status()
    entry = {
        "mediaType": MANIFEST,
        "size": len(got.content),
        "digest": platform_digest,
        "platform": {"architecture": arch, "os": "linux"},
    }
    text = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_LIST, "manifests": [entry]})
    body = text.encode()
    while "sha256:" + hashlib.sha256(body).hexdigest() <= platform_digest:
        body += b" "
    put = requests.put(
        f"{url}/{tag}",
        data=body,
        headers={"Content-Type": MANIFEST_LIST},
        auth=auth,
        verify=registry.verify,
        timeout=30,
    )
    put.raise_for_status()
    index = "sha256:" + hashlib.sha256(body).hexdigest()
    assert put.headers["Docker-Content-Digest"] == index
    return index


def test_a_base_that_became_an_index_is_recorded_as_its_tag_resolves(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    busybox_base: str,
) -> None:
    """The daemon holds the base under its platform manifest and under the index its tag
    now names: the build records the index (what the registry answers for the tag), so
    neither `plan` nor `update --changed-bases` finds the image outdated after it."""
    site = make_site()
    ref = push_second_base(docker_client, busybox_base, site, "one")
    platform = second_digest(site)
    index = make_tag_an_index(site, platform, str(docker_client.version()["Arch"]))
    assert second_digest(site) == index
    write_image(site.tree, site.name("a"), "1.0", 'FROM {{ "second" | image_tag }}\n')
    config = config_with_bases(site)
    built = dockerpkg("-c", config, "build", site.tree)
    assert built.status == 0, built.text
    held = docker_client.api.inspect_image(ref)["RepoDigests"]  # type: ignore[no-untyped-call]
    repository = ref.partition(":1.0")[0]
    assert sorted(d.partition("@")[2] for d in held if d.startswith(repository + "@")) == [
        platform,
        index,
    ]
    assert json.loads(published_labels(site, "a")[BASES_LABEL]) == {ref: index}

    quiet = dockerpkg("-c", config, "plan", "--detailed-exitcode", site.tree)
    assert quiet.status == 0, quiet.text
    changelog = site.tree / site.name("a") / "changelog"
    before = changelog.read_text(encoding="utf-8")
    update = dockerpkg("-c", config, "update", "--changed-bases", site.tree)
    assert update.status == 0, update.text
    assert changelog.read_text(encoding="utf-8") == before
