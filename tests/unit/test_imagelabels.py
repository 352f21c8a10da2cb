"""The labels a build sets: their contents from the changelog, the config and the checkout,
and how each builder gets them."""

from __future__ import annotations

from typing import ClassVar

import pytest

from dockerpkg.core.config import Config
from dockerpkg.core.definition import DEFINITION_LABEL
from dockerpkg.core.imagelabels import (
    OCI,
    SourceFacts,
    entry_date,
    image_labels,
    label_instruction,
    labelled_build,
    public_url,
)
from dockerpkg.core.plan import BuildEngine

CHANGELOG = (
    "web (1.2-3) wikimedia; urgency=high\n\n   Security update\n\n"
    " -- Jane Doe <jane@example.org>  Tue, 03 Mar 2026 10:15:00 +0100\n\n"
    "web (1.2-2) wikimedia; urgency=high\n\n   Older\n\n"
    " -- Jane Doe <jane@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n"
)
SOURCE = SourceFacts(revision="0123abcd" * 5, url="https://git.example.org/images.git")


DEFAULTS = Config()


def labels(config: Config = DEFAULTS, source: SourceFacts = SOURCE) -> dict[str, str]:
    return dict(
        image_labels(
            name="web",
            version="1.2-3",
            changelog=CHANGELOG,
            own_definition="sha256:def",
            config=config,
            source=source,
        )
    )


class TestContents:
    def test_every_label(self) -> None:
        assert labels() == {
            DEFINITION_LABEL: "sha256:def",
            OCI + "created": "2026-03-03T10:15:00+01:00",
            OCI + "revision": "0123abcd" * 5,
            OCI + "source": "https://git.example.org/images.git",
            OCI + "title": "web",
            OCI + "version": "1.2-3",
        }

    def test_outside_a_checkout_no_revision_or_source(self) -> None:
        found = labels(source=SourceFacts())
        assert OCI + "revision" not in found
        assert OCI + "source" not in found

    def test_the_config_overrides_the_source_or_turns_them_off(self) -> None:
        assert labels(Config(source_url="https://x.example/y"))[OCI + "source"] == (
            "https://x.example/y"
        )
        assert labels(Config(oci_labels=False)) == {DEFINITION_LABEL: "sha256:def"}
        assert labels(Config(oci_labels=False, definition_labels=False)) == {}

    def test_created_is_the_top_entry_s_date(self) -> None:
        assert entry_date(CHANGELOG) == "2026-03-03T10:15:00+01:00"
        assert entry_date("web (1) x; urgency=high\n\n  a\n\n -- A <a@b>  yesterday\n") is None
        assert entry_date("") is None

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("https://user:token@git.example.org/a.git", "https://git.example.org/a.git"),
            ("https://oauth2@git.example.org/a.git", "https://git.example.org/a.git"),
            ("git@git.example.org:a.git", "git@git.example.org:a.git"),
            ("https://git.example.org/a.git", "https://git.example.org/a.git"),
        ],
    )
    def test_a_remote_is_shown_without_credentials(self, url: str, shown: str) -> None:
        assert public_url(url) == shown


class TestBuilders:
    LABELS: ClassVar[dict[str, str]] = {"b": 'say "hi" for $5', "a": "x\\y"}

    def test_buildkit_gets_them_beside_the_build(self) -> None:
        build = labelled_build("FROM scratch\n", self.LABELS, BuildEngine.BUILDKIT)
        assert build.dockerfile == "FROM scratch\n"
        assert build.labels == self.LABELS

    def test_the_classic_builder_gets_one_label_line(self) -> None:
        build = labelled_build("FROM scratch", self.LABELS, BuildEngine.CLASSIC)
        assert build.labels == {}
        assert build.dockerfile == (
            'FROM scratch\nLABEL "a"="x\\\\y" "b"="say \\"hi\\" for \\$5"\n'
        )

    def test_an_escape_directive_is_followed(self) -> None:
        dockerfile = "# escape=`\nFROM scratch\n"
        build = labelled_build(dockerfile, {"a": 'q"$'}, BuildEngine.CLASSIC)
        assert build.dockerfile.endswith('LABEL "a"="q`"`$"\n')

    def test_no_labels_no_line(self) -> None:
        assert labelled_build("FROM x\n", {}, BuildEngine.CLASSIC).dockerfile == "FROM x\n"

    def test_label_instruction_sorted(self) -> None:
        assert label_instruction({"z": "1", "a": "2"}) == 'LABEL "a"="2" "z"="1"'
