"""A stand-in for the builders of an api run (tests of the api's wiring, with no daemon):
`api.build._run_on_builders` replaced by a fake that records the executors' settings and
builds nothing (the `daemons` fixture of tests/unit/conftest.py puts it in place)."""

from __future__ import annotations

from typing import Any

from dockerpkg.core.plan import Plan
from dockerpkg.core.report import Report


class FakeDaemons:
    """Takes the place of the builders: records the executors' settings, builds nothing."""

    def __init__(self) -> None:
        self.settings: list[Any] = []

    def __call__(
        self, plan: Plan, builders: object, settings: Any, *rest: Any, **kw: Any
    ) -> Report:
        self.settings.append(settings)
        return Report(outcomes=(), run_dir=str(settings.run_dir))
