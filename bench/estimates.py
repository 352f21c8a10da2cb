"""How fast a cold build could have been, from the durations dockerpkg measured for each step.

Pure: takes a `--report` JSON (steps with op, image, duration) and each image's in-tree
parents, and rebuilds the step graph dockerpkg's executor runs: a build waits for its parents'
verifications (or builds, when an image has no test) and for the base pull; a verify waits for
its build; a publish waits for its verify and its parents' publishes. Builds and verifications
share W slots, pushes and pulls have their own (as in dockerpkg.effects.executor).

Two figures come out:
- the critical path: the longest chain of dependent steps, a lower bound for any width;
- the best W-wide list schedule: greedy, never idle while work is ready, under a few priority
  rules; the shortest is what a good scheduler should approach with those durations.
"""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

POOL_OF_OP = {
    "pull": "pull",
    "build-stage": "build",
    "build": "build",
    "verify": "build",
    "publish": "push",
    "stage": "push",  # all_or_nothing's push, to the staging reference
}


@attrs.frozen
class Task:
    key: str
    pool: str
    duration: float
    needs: tuple[str, ...]


@attrs.frozen
class Estimate:
    critical_path: float
    list_schedule: float
    rule: str  # the priority rule that gave the shortest list schedule
    work: dict[str, float]  # total busy time per pool


def tasks_from_report(
    report: Mapping[str, Any], parents: Mapping[str, Sequence[str]]
) -> list[Task]:
    """The step graph of a report, in report (plan) order."""
    steps = report["steps"]
    keys = {f"{s['op']}:{s['image']}" for s in steps}
    pulls = [f"pull:{s['image']}" for s in steps if s["op"] == "pull"]
    tasks = []
    for step in steps:
        op, image = step["op"], step["image"]
        needs: list[str] = []
        if op in ("build-stage", "build"):
            mine = parents.get(image, ())
            if not mine:
                needs += pulls
            for parent in mine:
                ready = f"verify:{parent}" if f"verify:{parent}" in keys else f"build:{parent}"
                if ready in keys:
                    needs.append(ready)
            if op == "build" and f"build-stage:{image}" in keys:
                needs.append(f"build-stage:{image}")
        elif op == "verify":
            needs += [k for k in (f"build:{image}",) if k in keys]
        elif op in ("publish", "stage"):
            needs += [k for k in (f"verify:{image}",) if k in keys]
            needs += [f"{op}:{p}" for p in parents.get(image, ()) if f"{op}:{p}" in keys]
        if op in POOL_OF_OP:
            duration = float(step["duration"] or 0.0)
            tasks.append(Task(f"{op}:{image}", POOL_OF_OP[op], duration, tuple(needs)))
    return tasks


def topological(tasks: Sequence[Task]) -> list[Task]:
    """TASKS reordered so that every task comes after the ones it needs."""
    by_key = {t.key: t for t in tasks}
    sorter = graphlib.TopologicalSorter({t.key: t.needs for t in tasks})
    return [by_key[key] for key in sorter.static_order()]


def critical_path(tasks: Sequence[Task]) -> float:
    """The longest chain of dependent steps."""
    finish: dict[str, float] = {}
    for task in topological(tasks):
        start = max((finish[n] for n in task.needs), default=0.0)
        finish[task.key] = start + task.duration
    return max(finish.values(), default=0.0)


def bottom_levels(tasks: Sequence[Task]) -> dict[str, float]:
    """For each task, the longest chain from its start to the end of the run."""
    children: dict[str, list[str]] = {t.key: [] for t in tasks}
    for task in tasks:
        for need in task.needs:
            children[need].append(task.key)
    duration = {t.key: t.duration for t in tasks}
    level: dict[str, float] = {}
    for task in reversed(topological(tasks)):
        level[task.key] = duration[task.key] + max(
            (level[c] for c in children[task.key]), default=0.0
        )
    return level


def list_schedule(
    tasks: Sequence[Task], widths: Mapping[str, int], priority: Callable[[Task], float]
) -> float:
    """Makespan of non-delay list scheduling: whenever a slot is free, start the ready task
    with the smallest priority value."""
    waiting = {t.key: len(t.needs) for t in tasks}
    children: dict[str, list[Task]] = {t.key: [] for t in tasks}
    for task in tasks:
        for need in task.needs:
            children[need].append(task)
    free = dict(widths)
    ready: dict[str, list[tuple[float, int, Task]]] = {pool: [] for pool in widths}
    order = {t.key: i for i, t in enumerate(tasks)}
    for task in tasks:
        if not task.needs:
            heapq.heappush(ready[task.pool], (priority(task), order[task.key], task))
    running: list[tuple[float, int, Task]] = []
    now = 0.0
    while True:
        for pool, queue in ready.items():
            while queue and free[pool] > 0:
                _, index, task = heapq.heappop(queue)
                free[pool] -= 1
                heapq.heappush(running, (now + task.duration, index, task))
        if not running:
            break
        now, _, done = heapq.heappop(running)
        free[done.pool] += 1
        for child in children[done.key]:
            waiting[child.key] -= 1
            if waiting[child.key] == 0:
                heapq.heappush(ready[child.pool], (priority(child), order[child.key], child))
    return now


def estimate(
    report: Mapping[str, Any], parents: Mapping[str, Sequence[str]], widths: Mapping[str, int]
) -> Estimate:
    """Critical path and the best list schedule over a few priority rules."""
    tasks = tasks_from_report(report, parents)
    levels = bottom_levels(tasks)
    order = {t.key: i for i, t in enumerate(tasks)}
    rules: dict[str, Callable[[Task], float]] = {
        "longest path first": lambda t: -levels[t.key],
        "plan order": lambda t: float(order[t.key]),
        "longest step first": lambda t: -t.duration,
    }
    makespans = {name: list_schedule(tasks, widths, rule) for name, rule in rules.items()}
    best = min(makespans, key=lambda name: makespans[name])
    work: dict[str, float] = {}
    for task in tasks:
        work[task.pool] = work.get(task.pool, 0.0) + task.duration
    return Estimate(critical_path(tasks), makespans[best], best, work)
