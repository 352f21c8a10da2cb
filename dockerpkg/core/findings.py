"""Findings: what is wrong with published images that no step of a plan fixes (a definition
changed without a new version, a base image moved since the build), with the notes that go
with them."""

from __future__ import annotations

from collections.abc import Mapping

from dockerpkg.core.bases import base_findings, check_bases, unknown_note
from dockerpkg.core.definition import Definitions
from dockerpkg.core.observed import Observed
from dockerpkg.core.plan import Finding, Reason
from dockerpkg.core.tree import Image, Tree


def findings_of(
    tree: Tree,
    observed: Observed,
    defined: Definitions,
    published: list[str],
    directory: str,
    *,
    current: Mapping[str, str] | None = None,
) -> tuple[list[Finding], list[str]]:
    """What is wrong with the PUBLISHED images that no step fixes: a definition changed
    without a new version, a base image moved since the build; and the notes that go with.
    CURRENT: each base reference's digest now (the observed base_digests by default)."""
    drifted = [n for n in published if _drifted(tree.images[n], observed, defined)]
    findings = [_drift(tree.images[n], observed, defined, directory) for n in drifted]
    if not observed.labels_read:
        return findings, []
    now = observed.base_digests if current is None else current
    check = check_bases(tree, published, observed.bases, now)
    notes = [note for note in (unknown_note(check),) if note] + list(observed.problems)
    return findings + list(base_findings(tree, check, directory)), notes


def _drifted(image: Image, observed: Observed, defined: Definitions) -> bool:
    recorded = observed.recorded.get(image.label)
    current = defined.own.get(image.name)
    return recorded is not None and current is not None and recorded != current


def _drift(image: Image, observed: Observed, defined: Definitions, directory: str) -> Finding:
    return Finding(
        image=image.name,
        label=image.label,
        reason=Reason.DEFINITION_CHANGED_WITHOUT_VERSION_BUMP,
        detail=(
            f"{image.label} was built from definition {observed.recorded[image.label]}, the "
            f"tree now gives {defined.own[image.name]} under the same version"
        ),
        fix=f"dockerpkg update {image.name} {directory}",
    )
