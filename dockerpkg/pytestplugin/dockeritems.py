"""The items that need Docker: `build`, `test.sh`, and one per structure check of the image
folder's structure-tests.yaml. Collected only with --dockerpkg-build; skipped when the daemon
does not answer (failed with --dockerpkg-require-docker); the first of them to run builds what
the run needs, in one run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from dockerpkg.errors import DockerPkgError, error
from dockerpkg.pytestplugin.failures import ItemError
from dockerpkg.pytestplugin.items import DockerPkgItem
from dockerpkg.pytestplugin.state import state_of
from dockerpkg.pytestplugin.treeview import ImageView, unique_names

if TYPE_CHECKING:
    # Loaded when checks are collected (with --dockerpkg-build): a run without it never
    # reads structure tests.
    from dockerpkg.core.structure import StructureCheck

# The file of an image folder the structure check items come from.
STRUCTURE_TESTS = "structure-tests.yaml"


# Made once: a mark per item, looked up by name each time, costs in a big tree.
DOCKER_MARK = pytest.mark.dockerpkg_docker


class DockerItem(DockerPkgItem):
    """An item run against the image built in the run's test session."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_marker(DOCKER_MARK)

    def runtest(self) -> None:
        state = state_of(self.config)
        state.need_docker()
        # Imported here: the session's modules load Docker's client.
        from dockerpkg.pytestplugin.sessionbuilds import not_built

        result = state.builds().result(self.shown.name)
        if (why := not_built(result)) is not None:
            raise ItemError([why])
        self.run_built()

    def run_built(self) -> None:
        """The item's own check, once its image is built."""

    def skip_location(self) -> tuple[str, int]:
        """Where a skip of the item is reported (-rs, JUnit XML): the file it runs."""
        return f"{self.location[0]}/{self.skipped_file}", self.skipped_line

    skipped_file = "Dockerfile.template"
    skipped_line = 1


class BuildItem(DockerItem):
    """The image builds (its parents first), as `build` builds it, publishing nothing."""


class VerifyItem(DockerItem):
    """The image's test.sh passes against the built image."""

    skipped_file = "test.sh"

    def skip_location(self) -> tuple[str, int]:
        # An image without test.sh: its folder, not a file that is not there.
        if self.skipped_file not in self.shown.source.names:
            return self.location[0], 1
        return super().skip_location()

    def run_built(self) -> None:
        from dockerpkg.api.testsession import VerifyOutcome

        result = state_of(self.config).builds().result(self.shown.name)
        if result.verify is VerifyOutcome.NO_TEST:
            pytest.skip(f"{self.shown.source.file('test.sh')}: no such file, nothing to run")
        if result.verify is not VerifyOutcome.PASSED:
            raise ItemError([result.message or f"{self.shown.name}: test.sh did not run"])


class CheckItem(DockerItem):
    """One check of the image folder's structure-tests.yaml, run on the built image."""

    skipped_file = STRUCTURE_TESTS

    def __init__(self, *, check: StructureCheck, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.skipped_line = check.location.line or 1

    def run_built(self) -> None:
        from dockerpkg.api.imagetests import ProbeError, run_structure_check

        probe = state_of(self.config).builds().probe(self.shown.name)
        try:
            timeout = state_of(self.config).settings.check_timeout
            verdict = run_structure_check(probe, self.check, timeout=timeout)
        except ProbeError as exc:
            raise ItemError([f"{self.check.location}: {self.check.name}: {exc}"]) from None
        if not verdict.passed:
            head = f"{self.check.location}: check {self.check.name!r} failed"
            raise ItemError([head, *(f"  {m}" for m in verdict.messages)])


class StructureFileItem(DockerPkgItem):
    """The image's structure-tests.yaml, when it cannot be read: one failing item with the
    located message, in place of its checks; the image's other items still run."""

    def __init__(self, *, problem: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problem = problem
        self.add_marker(DOCKER_MARK)

    def runtest(self) -> None:
        raise ItemError([self.problem])


def check_items(
    parent: pytest.Collector, image: ImageView, taken: Sequence[str]
) -> Iterator[DockerPkgItem]:
    """One item per check of IMAGE's structure-tests.yaml, named after the check; a name
    met before (a fixed item's, or an earlier check's) gets ` #2`, ` #3`, ... A file that
    cannot be read (not UTF-8, too big, bad YAML) is one failing item named after it."""
    source = image.source
    if STRUCTURE_TESTS not in source.names:
        return
    # Loaded here: only runs that collect the Docker items need the structure-test modules.
    from dockerpkg.core.structure_yaml import parse_structure_tests

    where = source.file(STRUCTURE_TESTS)
    text = dict(source.files).get(STRUCTURE_TESTS)
    try:
        if text is None:
            why, line = dict(source.unread).get(STRUCTURE_TESTS, ("cannot read it", None))
            raise DockerPkgError([error(where, why, line)])
        tests = parse_structure_tests(text, where)
    except DockerPkgError as exc:
        yield StructureFileItem.from_parent(
            parent, name=STRUCTURE_TESTS, image=image, problem=str(exc)
        )
        return
    names = unique_names([*taken, *(c.name for c in tests.checks)])[len(taken) :]
    for check, name in zip(tests.checks, names, strict=True):
        yield CheckItem.from_parent(parent, name=name, image=image, check=check)
