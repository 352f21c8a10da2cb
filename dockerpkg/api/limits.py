"""What a planning verb (plan, build's plan, update, refs --online) tells its user of the
registries that limited it: a warning line each, on stderr; never in a plan, which stays
the same whatever the registries answered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockerpkg.core.registrylimits import RegistryUsage
from dockerpkg.core.report import Report

if TYPE_CHECKING:
    from dockerpkg.effects.registry.gate import RegistryGates


def limit_warning(usage: RegistryUsage) -> str:
    """The warning for one host whose USAGE counts answers that limited the run."""
    noun = "answer" if usage.limited == 1 else "answers"
    return (
        f"warning: registry {usage.host} limited the run: {usage.limited:,} {noun} limited, "
        f"waited {usage.waited:.1f} s for its limits"
    )


def limit_warnings(gates: RegistryGates | None) -> list[str]:
    """A warning for each host that limited the run so far, as its GATES counted (none:
    the run asked no registry)."""
    if gates is None:
        return []
    return [limit_warning(u) for u in gates.usage() if u.limited]


def planning_report(gates: RegistryGates | None) -> Report:
    """The report of a run with nothing to do: no step, and what planning asked of each
    registry (a no-op `build --report` still says how hard it pressed them)."""
    return Report(outcomes=(), registries=() if gates is None else gates.usage())
