"""The items every image holds without Docker: `render` and `lint` (and the tree's own `lint`
for findings about no image in particular); the base class of every item of the plugin."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dockerpkg.core.lint import Finding
from dockerpkg.errors import Severity
from dockerpkg.pytestplugin.failures import ItemError, worded
from dockerpkg.pytestplugin.state import state_of
from dockerpkg.pytestplugin.treeview import ImageView

# What a lint item records of each warning, on its report (and in JUnit XML's properties):
# the terminal summary lists them from there, on xdist's controller too.
WARNING_PROPERTY = "dockerpkg lint warning"


def domain(node: pytest.Item | pytest.Collector) -> str:
    """What a report's headline calls NODE: its parent's name and its own, apart. Not the
    end of its node id, where pytest takes the "domain" for Python's module.Class.function
    and prints the dots of `test.sh` (or of an image's name) as `::`."""
    return f"{node.parent.name} {node.name}" if node.parent is not None else node.name


class DockerPkgItem(pytest.Item):
    """An item of the tree's collection, about IMAGE (None: about the tree)."""

    def __init__(self, *, image: ImageView | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image = image

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, domain(self)

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        text = worded(excinfo)
        if text is None:
            return super().repr_failure(excinfo, style=style)
        return state_of(self.config).shown(text)

    @property
    def shown(self) -> ImageView:
        """The image of an item that has one."""
        assert self.image is not None
        return self.image


class RenderItem(DockerPkgItem):
    """The image's folder reads and its templates render in the sandbox."""

    def runtest(self) -> None:
        if self.shown.errors:
            raise ItemError(str(p) for p in self.shown.errors)


class LintItem(DockerPkgItem):
    """The image's lint findings, of the rules the config selects: errors fail, warnings
    are recorded for the summary."""

    def __init__(self, *, findings: Sequence[Finding], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.findings = tuple(findings)

    def runtest(self) -> None:
        shown = state_of(self.config).shown
        for finding in self.findings:
            if finding.severity is Severity.WARNING:
                self.user_properties.append((WARNING_PROPERTY, shown(str(finding))))
        errors = [str(f) for f in self.findings if f.severity is Severity.ERROR]
        if errors:
            raise ItemError(errors)


class TreeLintItem(LintItem):
    """The findings about no image folder: the config's, the tree's as a whole."""


class TreeErrorItem(DockerPkgItem):
    """The tree, when it cannot be read (a config that does not parse, ...): one failing
    item with dockerpkg's message, in place of the images' items."""

    def __init__(self, *, problem: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problem = problem

    def runtest(self) -> None:
        raise ItemError([self.problem])
