"""Carry out a build plan's steps on a daemon and the registry; no decisions: the plan has
them. `Executor` (dispatch) takes the daemon through its port (dockerpkg.effects.ports)."""

from dockerpkg.effects.executor.dispatch import Executor
from dockerpkg.effects.executor.settings import Settings

__all__ = ["Executor", "Settings"]
