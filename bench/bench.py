"""Measure dockerpkg against docker-pkg 4.0.4 in one run: same trees, daemon and registry.

Each scenario gets a fresh tree from gentree.py. The two tools take turns (the first one of
a round alternates), each figure is the median of --repeat runs. The registry is a
`docker-registry` at https://127.0.0.1 (see tlsregistry.py for why port 443); docker-pkg is
installed into bench/.venv-docker-pkg when missing.

    .venv/bin/python bench/bench.py [--repeat N] [--quick] [--jobs W] [--json OUT]
                                    [--only SCENARIO ...] [--dockerpkg-only] [--keep]

Scenarios: cold (build+verify+publish from nothing), noop (everything already published: no
auth, htpasswd, Bearer tokens, and dockerpkg capped at 3 requests at once), update (new
changelog entries below the root), diamonds (update through stacked diamonds), prune (nothing to
remove), plan (offline plan of two sizes of tree, with credentials, dockerpkg only), collect
(`pytest --dockerpkg --collect-only` of the big tree against `lint` and an empty pytest run),
bases (one base refreshed: `update --changed-bases` against `update --all`), cache (a rebuild of
every image on a machine holding nothing: `--cache registry` against none, dockerpkg only), refs
(`refs` over a generated repository of 20,000 files against `git grep`), platforms (the cold
tree built for one platform and for two, arm64 under QEMU, against docker-pkg's build of it for
the daemon's own).
Needs root (port 443, /etc/docker/certs.d), a Docker daemon and the Debian
tools that scripts/services.sh installs; `make bench` provides them.
"""

from __future__ import annotations

import argparse
import base64
import compileall
import contextlib
import datetime
import io
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import docker

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))  # tests.support: the busybox base image

import estimates  # noqa: E402
import tlsregistry  # noqa: E402
from gentree import RUN_WORK, generate, generate_diamonds  # noqa: E402
from refsrepo import generate_repo  # noqa: E402

from dockerpkg.core.config import DEFAULT_JOBS  # noqa: E402
from dockerpkg.core.plan import BuildEngine  # noqa: E402
from tests.support import cleanup  # noqa: E402
from tests.support.platforms import (  # noqa: E402
    AMD64,
    ARM64,
    Endpoint,
    build_platform_busybox,
    index_platforms,
    put_index,
    require_arm64_emulation,
)
from tests.support.second_daemon import start_second_daemon  # noqa: E402
from tests.support.services import (  # noqa: E402
    build_busybox_base,
    connect_docker,
    push_image,
    start_registry,
    tag_image,
)

DOCKERPKG = Path(sys.prefix, "bin", "dockerpkg")  # .venv/bin/dockerpkg under `make bench`
DOCKER_PKG_VERSION = "4.0.4"
DOCKER_PKG_VENV = BENCH / ".venv-docker-pkg"
DOCKER_PKG = DOCKER_PKG_VENV / "bin" / "docker-pkg"

OURS, THEIRS = "dockerpkg", "docker-pkg"
HOST = tlsregistry.HOST
BASE_NAME, BASE_TAG = "base/busybox", "1.36"
BASE_LABEL = f"{HOST}/{BASE_NAME}:{BASE_TAG}"
VERSION = "1.0-1"  # every generated image starts at this version
PREFIXES = {"cold": "cold", "big": "big", "diamonds": "dia", "bases": "onbase"}
# The bases scenario's three base images, each the busybox base with a marker file.
BASES = tuple(f"{HOST}/base/root{k}:{BASE_TAG}" for k in (1, 2, 3))
COPY_PATH = "/bin/busybox"  # what second parents are COPY'd from: scratch+busybox has no /etc
PUSH_JOBS = PULL_JOBS = 4  # dockerpkg's fixed push and pull pools (effects/executor/settings.py)
SCENARIOS = (
    "cold", "noop", "update", "diamonds", "prune", "plan", "collect", "bases", "cache", "refs",
    "platforms",
)  # fmt: skip
# The platforms scenario's ways of building the cold tree: dockerpkg's `platforms` key.
PLATFORM_WAYS = {"one platform": (AMD64,), "two platforms": (AMD64, ARM64)}


@attrs.frozen
class Sizes:
    cold_count: int
    cold_depth: int
    big_count: int
    big_depth: int
    diamond_levels: int
    repeat: int


FULL = Sizes(cold_count=60, cold_depth=6, big_count=2000, big_depth=6, diamond_levels=24, repeat=3)
QUICK = Sizes(cold_count=12, cold_depth=3, big_count=200, big_depth=6, diamond_levels=12, repeat=1)

TIMEOUT_S = {
    "cold": 1800.0,
    "noop": 600.0,
    "update": 600.0,
    "prune": 300.0,
    "plan": 300.0,
    "collect": 300.0,
    "bases": 1800.0,
    "cache": 1800.0,
    "refs": 300.0,
    "platforms": 3600.0,
}
DIAMONDS_CAP_S = 60.0
# The no-op's capped runs: dockerpkg with at most this many requests to the registry at once.
NOOP_CAP = 3
# docker-pkg on a Bearer-token registry: long enough to show it rebuilds (see _noop_runs).
NOOP_TOKEN_THEIRS_S = 60.0
# The plan scenario's second tree has this many times the images of the first: planning is
# linear when the time grows less than PLAN_GROWTH times.
PLAN_FACTOR, PLAN_GROWTH = 4, 5.0


def say(message: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"bench {stamp}: {message}", file=sys.stderr, flush=True)


# --- Running one command --------------------------------------------------------------------


@attrs.frozen
class Run:
    """One timed command."""

    tool: str
    seconds: float
    returncode: int | None  # None: killed at the time limit
    max_rss_mb: float
    log: str
    extra: dict[str, Any] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.extra.get("problem")

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "seconds": round(self.seconds, 4),
            "returncode": self.returncode,
            "max_rss_mb": round(self.max_rss_mb, 1),
            "log": self.log,
            **self.extra,
        }


def run_measured(
    tool: str,
    command: Sequence[str | Path],
    *,
    env: dict[str, str],
    cwd: Path,
    log: Path,
    timeout: float,
    stdout: Path | None = None,
) -> Run:
    """Run COMMAND, timing it from spawn to exit. CPU time and peak RSS come from wait4: the
    command and the children it waited for, not the daemon nor the registry it talked to."""
    killed = threading.Event()
    reaped = threading.Lock()
    log.parent.mkdir(parents=True, exist_ok=True)
    cpu_before = machine_cpu()
    with log.open("wb") as err, stdout.open("wb") if stdout else contextlib.nullcontext() as out:
        begin = time.perf_counter()
        process = subprocess.Popen(
            [str(part) for part in command],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out or err,
            stderr=err,
            start_new_session=True,  # its own process group, so a time limit ends all of it
        )

        def kill() -> None:
            with reaped:
                if process.returncode is None:
                    killed.set()
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # Ctrl-C or SIGTERM: its own session did not get the signal
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            os.waitpid(process.pid, 0)
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - begin
        with reaped:
            process.returncode = os.waitstatus_to_exitcode(status)
    busy, total = (after - before for after, before in zip(machine_cpu(), cpu_before, strict=True))
    return Run(
        tool=tool,
        seconds=timeout if killed.is_set() else seconds,
        returncode=None if killed.is_set() else process.returncode,
        max_rss_mb=usage.ru_maxrss / 1024,
        log=str(log),
        extra={
            "tool_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            # All CPUs of the machine, whoever used them: 1.0 means saturated.
            "machine_busy": round(busy / total, 3) if total else None,
        },
    )


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def median(runs: Sequence[Run]) -> float | None:
    good = [r.seconds for r in runs if r.ok]
    return statistics.median(good) if good and len(good) == len(runs) else None


# --- Reporting --------------------------------------------------------------------------------


@attrs.frozen
class Row:
    measure: str
    ours: str
    theirs: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""


@attrs.define
class Scenario:
    key: str
    title: str
    rows: list[Row] = attrs.field(factory=list)
    runs: list[Run] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    figures: dict[str, Any] = attrs.field(factory=dict)

    def table(self) -> str:
        header = Row("measure", OURS, THEIRS, "ratio", "target", "result")
        cells = [attrs.astuple(r) for r in (header, *self.rows)]
        widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in cells
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join([f"== {self.title} ==", *lines, *(f"  note: {n}" for n in self.notes)])

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": [attrs.asdict(r) for r in self.rows],
            "figures": self.figures,
            "notes": self.notes,
            "runs": [r.to_json() for r in self.runs],
        }


def seconds_text(value: float | None, runs: Sequence[Run] = ()) -> str:
    if value is not None:
        return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
    timed_out = [r for r in runs if r.returncode is None]
    if timed_out:
        return f">{timed_out[0].seconds:.0f} s"
    failed = [r for r in runs if not r.ok]
    if failed:
        first = failed[0]
        why = first.extra.get("problem") or f"exit {first.returncode}"
        return f"failed ({why})"
    return "n/a"


def speedup_row(
    measure: str, ours: list[Run], theirs: list[Run], at_least: float | None
) -> tuple[Row, float | None]:
    """OURS vs THEIRS medians; ratio = how many times faster dockerpkg is."""
    mine, other = median(ours), median(theirs)
    ratio = None
    ratio_text = ""
    if mine is not None and other is not None and mine > 0:
        ratio = other / mine
        ratio_text = times(ratio, down=True)
    elif mine is not None and any(r.returncode is None for r in theirs) and mine > 0:
        ratio = theirs[0].seconds / mine
        ratio_text = ">" + times(ratio, down=True)
    target = f">= {at_least:g}x faster" if at_least is not None else ""
    result = verdict(ratio is not None and at_least is not None and ratio >= at_least, ratio)
    if at_least is None:
        result = ""
    return Row(
        measure, seconds_text(mine, ours), seconds_text(other, theirs), ratio_text, target, result
    ), ratio


def times(ratio: float, *, down: bool) -> str:
    """A ratio with two decimals, rounded toward the safe side of its target (2.4987 is
    shown as 2.49x, not as a 2.50x that would seem to meet ">= 2.5x")."""
    scaled = ratio * 100
    return f"{(math.floor(scaled) if down else math.ceil(scaled)) / 100:.2f}x"


def busy_row(measure: str, ours: Sequence[Run], theirs: Sequence[Run]) -> Row:
    """How busy all CPUs of the machine were during the runs (median): context, not a target."""

    def text(runs: Sequence[Run]) -> str:
        values = [r.extra["machine_busy"] for r in runs if r.extra.get("machine_busy") is not None]
        return f"{statistics.median(values):.0%}" if values else ""

    return Row(measure, text(ours), text(theirs))


def verdict(met: bool, value: float | None) -> str:
    if value is None:
        return "n/a"
    return "met" if met else "MISSED"


# --- The bench --------------------------------------------------------------------------------


def _with_speedup(scenario: Scenario, target: float, verb: str) -> Scenario:
    """SCENARIO with its wall-time ratio row (n/a when dockerpkg lacks VERB) and figure."""
    ours = [r for r in scenario.runs if r.tool == OURS]
    theirs = [r for r in scenario.runs if r.tool == THEIRS]
    row, ratio = speedup_row("wall time", ours, theirs, target)
    if not ours:
        row = attrs.evolve(row, ours=f"n/a (no {verb} verb)", result="n/a")
    scenario.rows.append(row)
    scenario.figures["speedup"] = ratio
    return scenario


@attrs.define
class Bench:
    work: Path
    sizes: Sizes
    jobs: int
    tls: tlsregistry.Tls
    login: tlsregistry.Login
    client: docker.APIClient
    env: dict[str, str]
    verbs: set[str]
    ours_only: bool = False
    definition_labels: bool = True
    publish: str = "per_image"  # dockerpkg --publish in the cold scenario
    scenarios: list[Scenario] = attrs.field(factory=list)
    last_registry: Path | None = None
    _counter: int = 0

    # -- files and configs ---------------------------------------------------------------------

    def path(self, *parts: str) -> Path:
        return self.work.joinpath(*parts)

    def fresh_dir(self, label: str) -> Path:
        self._counter += 1
        folder = self.path("runs", f"{self._counter:03d}-{label}")
        folder.mkdir(parents=True)
        return folder

    def config(self, *, auth: bool, cap: int | None = None) -> Path:
        """The tools' config for the registry, with AUTH its login; with CAP (dockerpkg
        only: docker-pkg has no such key) at most CAP requests to it at once."""
        name = "auth" if auth else "noauth"
        path = self.path(f"{name}.yaml" if cap is None else f"{name}-cap{cap}.yaml")
        if not path.exists():
            lines = [
                f"registry: {HOST}",
                f"ca_bundle: {self.tls.ca}",
                "base_images:",
                f"  - {BASE_LABEL}",
            ]
            if auth:
                lines += [f"username: {self.login.username}", f"password: {self.login.password}"]
            if not self.definition_labels:
                lines.append("definition_labels: false")  # docker-pkg takes it as a variable
            if cap is not None:
                lines += ["registries:", f"  {HOST}:", f"    max_requests: {cap}"]
            path.touch(mode=0o600)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def tool_env(self, tool: str, *, auth: bool) -> dict[str, str]:
        env = dict(self.env)
        if tool == THEIRS and auth:
            # docker-pkg's "is it published?" GET sends no credentials of its own.
            env["NETRC"] = str(self.path("netrc"))
            # Nor do its pulls of base images: docker-py sends what `docker login` wrote.
            env["DOCKER_CONFIG"] = str(self.path("docker-login"))
        return env

    def tree(self, key: str) -> tuple[Path, dict[str, list[str]]]:
        """The scenario's tree (made once) and each image's parents."""
        folder = self.path("trees", key)
        if not folder.exists():
            s = self.sizes
            if key == "cold":
                generate(
                    folder, s.cold_count, s.cold_depth, run=RUN_WORK, test=True,
                    base=BASE_NAME, prefix=PREFIXES["cold"], roots=1, copy_path=COPY_PATH,
                )  # fmt: skip
            elif key in ("big", "bigger"):
                # bigger: the same kind of tree, PLAN_FACTOR times the images
                count = s.big_count * (PLAN_FACTOR if key == "bigger" else 1)
                generate(
                    folder, count, s.big_depth, base=BASE_NAME, prefix=PREFIXES["big"],
                    roots=1, copy_path=COPY_PATH,
                )  # fmt: skip
            elif key == "bases":
                # One subtree per base image, a third of the images each.
                for k, base in enumerate(BASES, 1):
                    generate(
                        folder, s.cold_count // len(BASES), s.cold_depth, run=RUN_WORK,
                        test=True, base=base.removeprefix(f"{HOST}/").rpartition(":")[0],
                        prefix=f"{PREFIXES['bases']}{k}-", roots=1, copy_path=COPY_PATH,
                    )  # fmt: skip
            elif key == "diamonds":
                generate_diamonds(
                    folder, s.diamond_levels, base=BASE_NAME, prefix=PREFIXES["diamonds"],
                    copy_path=COPY_PATH,
                )  # fmt: skip
        return folder, read_parents(folder)

    def copy_tree(self, key: str, label: str) -> Path:
        source, _ = self.tree(key)
        target = self.fresh_dir(label) / "tree"
        shutil.copytree(source, target)
        return target

    # -- daemon and registry -------------------------------------------------------------------

    def remove_images(self, prefix: str) -> int:
        """Remove every tag 127.0.0.1/PREFIX*; untagged parents go with them."""
        removed = 0
        for image in self.client.images():
            for tag in image.get("RepoTags") or ():
                if tag.startswith(f"{HOST}/{prefix}"):
                    with contextlib.suppress(docker.errors.NotFound):
                        self.client.remove_image(tag, force=True)
                        removed += 1
        return removed

    def local_labels(self, prefix: str) -> set[str]:
        return {
            tag
            for image in self.client.images()
            for tag in image.get("RepoTags") or ()
            if tag.startswith(f"{HOST}/{prefix}")
        }

    @contextlib.contextmanager
    def registry(
        self, *, auth: bool, data: Path | None = None, access_log: bool = False, token: bool = False
    ) -> Iterator[tlsregistry.Registry]:
        """A registry with the base image pushed; fresh data unless DATA is given; with AUTH
        and TOKEN, the login is checked by a Bearer token server rather than htpasswd."""
        folder = self.fresh_dir("registry")
        self.last_registry = folder
        own_data = data is None
        data_dir = folder / "data" if data is None else data
        try:
            with tlsregistry.serve(
                folder,
                self.tls,
                data_dir,
                self.login if auth else None,
                access_log=access_log,
                token=token,
            ) as registry:
                self.push(BASE_LABEL, registry)
                yield registry
        finally:
            if own_data:
                shutil.rmtree(data_dir, ignore_errors=True)

    def push(self, label: str, registry: tlsregistry.Registry) -> None:
        repository, _, tag = label.rpartition(":")
        for chunk in self.client.push(
            repository, tag=tag, auth_config=registry.auth_config, stream=True, decode=True
        ):
            if "error" in chunk:
                raise RuntimeError(f"pushing {label}: {chunk['error']}")

    # -- one tool run ----------------------------------------------------------------------------

    def run(
        self,
        tool: str,
        args: Sequence[str | Path],
        *,
        label: str,
        auth: bool,
        timeout: float,
        stdout: Path | None = None,
        config: Path | None = None,
    ) -> tuple[Run, Path]:
        folder = self.fresh_dir(f"{label}-{tool}")
        binary = DOCKERPKG if tool == OURS else DOCKER_PKG
        command = [binary, "-c", config or self.config(auth=auth), *args]
        say(f"{label}: {tool} {' '.join(str(a) for a in args[:1])}")
        run = run_measured(
            tool,
            command,
            env=self.tool_env(tool, auth=auth),
            cwd=folder,  # docker-pkg writes ./docker-pkg-build.log
            log=folder / "output.log",
            timeout=timeout,
            stdout=stdout,
        )
        if run.returncode is None:
            say(f"{label}: {tool} stopped at the {timeout:.0f} s limit")
        elif run.returncode != 0:
            tail = Path(run.log).read_text(errors="replace")[-1500:]
            say(f"{label}: {tool} exited {run.returncode} after {run.seconds:.1f} s:\n{tail}")
        else:
            say(f"{label}: {tool} {run.seconds:.2f} s")
        return run, folder

    def rounds(self, *, warmup: bool = False) -> Iterator[tuple[bool, list[str]]]:
        """(timed?, order of the tools) per round; the first tool alternates. A warm-up round
        (not timed) first fills the page cache and the registry's caches for both tools."""
        tools = [OURS] if self.ours_only else [OURS, THEIRS]
        if warmup:
            yield False, tools
        for index in range(self.sizes.repeat):
            yield True, tools if index % 2 == 0 else tools[::-1]

    # -- scenarios -------------------------------------------------------------------------------

    def cold(self) -> Scenario:
        s = self.sizes
        tree, parents = self.tree("cold")
        refs = [(name, VERSION) for name in parents]
        scenario = Scenario(
            "cold",
            f"Cold build+verify+publish, {s.cold_count} images, depth {s.cold_depth} "
            f"(dockerpkg --jobs {self.jobs})",
        )
        estimates_per_run: list[estimates.Estimate] = []
        for index, (_, tools) in enumerate(self.rounds()):
            for tool in tools:
                self.remove_images(PREFIXES["cold"])
                with self.registry(auth=True, access_log=True) as registry:
                    report = self.path("runs", f"cold-report-{index}.json")
                    before = tlsregistry.count_requests(self.last_registry or self.work)
                    if tool == OURS:
                        args: list[str | Path] = [
                            "build", "--jobs", str(self.jobs), "--report", report,
                            "--run-dir", self.path("runs", f"cold-logs-{index}"),
                            "--publish", self.publish, tree,
                        ]  # fmt: skip
                    else:
                        args = ["build", tree]
                    run, _ = self.run(
                        tool, args, label="cold", auth=True, timeout=TIMEOUT_S["cold"]
                    )
                    published = tlsregistry.count_published(registry, refs)
                    after = tlsregistry.count_requests(self.last_registry or self.work)
                run.extra["published"] = published
                run.extra["registry_requests"] = after - before
                if published != len(refs):
                    run.extra["problem"] = f"{published}/{len(refs)} published"
                if tool == OURS and report.exists():
                    data = json.loads(report.read_text(encoding="utf-8"))
                    widths = {"build": self.jobs, "push": PUSH_JOBS, "pull": PULL_JOBS}
                    found = estimates.estimate(data, parents, widths)
                    estimates_per_run.append(found)
                    run.extra["executor_elapsed"] = data.get("elapsed")
                    run.extra["critical_path"] = round(found.critical_path, 3)
                    run.extra["list_schedule"] = round(found.list_schedule, 3)
                    run.extra["list_schedule_rule"] = found.rule
                    run.extra["pool_work"] = {k: round(v, 3) for k, v in found.work.items()}
                scenario.runs.append(run)
        if not self.definition_labels:
            scenario.notes.append("dockerpkg ran with `definition_labels: false`")
        ours = [r for r in scenario.runs if r.tool == OURS]
        theirs = [r for r in scenario.runs if r.tool == THEIRS]
        row, ratio = speedup_row("wall time", ours, theirs, 2.5)
        scenario.rows += [row, busy_row("  all CPUs busy during the run", ours, theirs)]
        requests = [int(r.extra["registry_requests"]) for r in ours]
        if requests:
            scenario.rows.append(
                Row("  registry requests of the run", str(int(statistics.median(requests))))
            )
            scenario.figures["registry_requests"] = statistics.median(requests)
        if self.publish != "per_image":
            scenario.notes.append(f"dockerpkg ran with --publish {self.publish}")
        scenario.figures["speedup"] = ratio
        mine = median(ours)
        if estimates_per_run:
            bound = statistics.median(e.critical_path for e in estimates_per_run)
            schedule = statistics.median(e.list_schedule for e in estimates_per_run)
            executor = statistics.median(float(r.extra.get("executor_elapsed") or 0) for r in ours)
            work = statistics.median(e.work.get("build", 0.0) for e in estimates_per_run)
            scenario.rows += [
                Row("  executor alone (report elapsed)", seconds_text(executor)),
                Row("  critical path (lower bound)", seconds_text(bound)),
                Row(f"  build+verify work / {self.jobs}", seconds_text(work / self.jobs)),
            ]
            sched_ratio = mine / schedule if mine is not None and schedule > 0 else None
            scenario.rows.append(
                Row(
                    f"  best {self.jobs}-wide list schedule",
                    seconds_text(schedule),
                    "",
                    times(sched_ratio, down=False) if sched_ratio is not None else "",
                    "wall <= 1.3x schedule",
                    verdict(sched_ratio is not None and sched_ratio <= 1.3, sched_ratio),
                )
            )
            scenario.figures.update(
                critical_path=bound,
                list_schedule=schedule,
                schedule_ratio=sched_ratio,
                executor_elapsed=executor,
                build_pool_work=work,
            )
            scenario.notes.append(
                "schedule figures come from the per-step durations in dockerpkg's --report, "
                "measured while steps ran side by side"
            )
        return scenario

    def push_base(self, label: str, mark: str, registry: tlsregistry.Registry) -> None:
        """The busybox base with /mark holding MARK, pushed as LABEL (again: a refresh)."""
        dockerfile = f"FROM {BASE_LABEL}\nRUN echo {mark} > /mark\n".encode()
        for chunk in self.client.build(
            fileobj=io.BytesIO(dockerfile), tag=label, rm=True, pull=False, decode=True
        ):
            if "error" in chunk:
                raise RuntimeError(f"building {label}: {chunk['error']}")
        self.push(label, registry)

    def bases_config(self) -> Path:
        path = self.path("bases.yaml")
        if not path.exists():
            text = self.config(auth=True).read_text(encoding="utf-8")
            more = "".join(f"  - {base}\n" for base in BASES)
            path.touch(mode=0o600)
            path.write_text(text.replace("base_images:\n", "base_images:\n" + more, 1))
        return path

    def bases(self) -> Scenario:
        """After one of three bases is refreshed: `update --changed-bases` + `build` against
        `update --all` + `build`, each on its own copy of the same published tree."""
        s = self.sizes
        _, parents = self.tree("bases")
        # What the refreshed base outdates: its root and everything built on it.
        children: dict[str, list[str]] = {}
        for name, mine in parents.items():
            for parent in mine:
                children.setdefault(parent, []).append(name)
        root = next(
            n
            for n, mine in sorted(parents.items())
            if not mine and n.startswith(f"{PREFIXES['bases']}1-")
        )
        on_base, stack = set(), [root]
        while stack:
            name = stack.pop()
            if name not in on_base:
                on_base.add(name)
                stack += children.get(name, [])
        scenario = Scenario(
            "bases",
            f"One of {len(BASES)} base images refreshed, {s.cold_count} images, depth "
            f"{s.cold_depth} (dockerpkg --jobs {self.jobs})",
        )
        config = self.bases_config()
        ways = {
            "changed-bases": ["update", "--changed-bases"],
            "all": ["update", "--all", "--version-suffix", "all1"],
        }
        for index, _ in enumerate(self.rounds()):
            self.remove_images(PREFIXES["bases"])
            with self.registry(auth=True) as registry:
                for base in BASES:
                    self.push_base(base, "first", registry)
                first = self.copy_tree("bases", "bases-first")
                self.run(OURS, ["build", first], label="bases-first", auth=True,
                         timeout=TIMEOUT_S["bases"], config=config)  # fmt: skip
                self.push_base(BASES[0], "refreshed", registry)
                order = list(ways) if index % 2 == 0 else list(ways)[::-1]
                for way in order:
                    tree = self.copy_tree("bases", f"bases-{way}")
                    options: dict[str, Any] = {
                        "auth": True, "timeout": TIMEOUT_S["bases"], "config": config
                    }  # fmt: skip
                    bump, _ = self.run(OURS, [*ways[way], tree], label=f"bases-{way}", **options)
                    report = self.path("runs", f"bases-{way}-{index}.json")
                    build, _ = self.run(
                        OURS, ["build", "--report", report, tree], label=f"bases-{way}", **options
                    )
                    steps = json.loads(report.read_text(encoding="utf-8"))["steps"]
                    rebuilt = sum(1 for step in steps if step["op"] == "build")
                    run = attrs.evolve(build, seconds=bump.seconds + build.seconds)
                    run.extra.update(way=way, rebuilt=rebuilt, update_seconds=bump.seconds)
                    if bump.returncode != 0 or build.returncode != 0:
                        run.extra["problem"] = "a command failed"
                    scenario.runs.append(run)
        for way in ways:
            runs = [r for r in scenario.runs if r.extra["way"] == way]
            rebuilt = sorted({int(r.extra["rebuilt"]) for r in runs})
            scenario.rows += [
                Row(f"{' '.join(ways[way][:2])} + build", seconds_text(median(runs), runs)),
                Row("  images rebuilt", ", ".join(str(n) for n in rebuilt)),
            ]
            scenario.figures[f"{way}_seconds"] = median(runs)
            scenario.figures[f"{way}_rebuilt"] = rebuilt
        scenario.rows.append(Row("images on the refreshed base (and below it)", str(len(on_base))))
        scenario.figures["on_refreshed_base"] = len(on_base)
        scenario.notes.append(
            "the first build of each round (everything, untimed) publishes the tree on the "
            "three bases; then the first base is pushed again with other content"
        )
        return scenario

    def cache(self) -> Scenario:
        """Every image of the cold tree gets a new version and is rebuilt on a Docker daemon
        started for that build (a fresh CI machine: no image, no build cache), with
        `--cache registry` (layers of the published versions reused) against without.

        The registry is a plain-HTTP one on 127.0.0.1:PORT, as in the tests: for a loopback
        registry BuildKit's cache import speaks plain HTTP to the port given (80 without
        one), so the TLS registry on 127.0.0.1:443 of the other scenarios cannot serve it.
        """
        s = self.sizes
        scenario = Scenario(
            "cache",
            f"Rebuild of {s.cold_count} images (new versions, same Dockerfiles), depth "
            f"{s.cold_depth}, on a fresh daemon each (dockerpkg --jobs {self.jobs})",
        )
        ways = {"registry cache": ["--cache", "registry"], "no cache": []}
        jobs = ["--jobs", str(self.jobs)]
        client = connect_docker()
        for index, _ in enumerate(self.rounds()):
            with start_registry("htpasswd") as registry:
                base = tag_image(client, BASE_LABEL, registry.ref(f"{BASE_NAME}:{BASE_TAG}"))
                push_image(client, base, registry)
                config = self.path(f"cache-{index}.yaml")
                config.write_text(
                    f"registry: {registry.host}\nusername: {registry.username}\n"
                    f"password: {registry.password}\nbase_images:\n  - {base}\n",
                    encoding="utf-8",
                )
                config.chmod(0o600)
                options: dict[str, Any] = {
                    "auth": True, "timeout": TIMEOUT_S["cache"], "config": config
                }  # fmt: skip
                first = self.copy_tree("cold", "cache-first")
                self.run(OURS, ["build", *jobs, "--cache", "registry", first],
                         label="cache-first", **options)  # fmt: skip
                order = list(ways) if index % 2 == 0 else list(ways)[::-1]
                for way in order:
                    tree = self.copy_tree("cold", f"cache-{way.replace(' ', '-')}")
                    suffix = f"r{index}{way[0]}"
                    bump, _ = self.run(
                        OURS, ["update", "--all", "--version-suffix", suffix, tree],
                        label="cache-update", **options,
                    )  # fmt: skip
                    logs = self.fresh_dir(f"cache-logs-{index}-{way.replace(' ', '-')}")
                    with start_second_daemon() as machine:
                        run, _ = self.run(
                            OURS, ["build", *jobs, "--builders", machine.host, "--run-dir",
                                   logs, *ways[way], tree],
                            label=f"cache-{way}", **options,
                        )  # fmt: skip
                    run.extra["way"] = way
                    run.extra["cached_runs"] = cached_run_steps(logs)
                    if bump.returncode != 0 or run.returncode != 0:
                        run.extra["problem"] = "a command failed"
                    scenario.runs.append(run)
            cleanup.remove_tags_under(client, f"{registry.host}/")
        for way in ways:
            runs = [r for r in scenario.runs if r.extra["way"] == way]
            scenario.rows.append(Row(f"build, {way}", seconds_text(median(runs), runs)))
            cached = sorted({int(r.extra["cached_runs"]) for r in runs})
            scenario.rows.append(Row("  RUN steps taken from cache", ", ".join(map(str, cached))))
            scenario.figures[f"{way.replace(' ', '_')}_seconds"] = median(runs)
        scenario.notes.append(
            "the first build of each round (untimed) publishes the tree with inline cache on "
            "the shared daemon; each timed build follows `update --all` and runs on a daemon "
            "started for it (its start is not timed)"
        )
        return scenario

    def platforms_config(self, platforms: Sequence[str]) -> Path:
        """The authenticated config with `platforms` set to PLATFORMS."""
        path = self.path(f"platforms-{len(platforms)}.yaml")
        if not path.exists():
            text = self.config(auth=True).read_text(encoding="utf-8")
            listed = "".join(f"  - {p}\n" for p in platforms)
            path.touch(mode=0o600)
            path.write_text(f"{text}platforms:\n{listed}", encoding="utf-8")
        return path

    def push_platform_base(self, registry: tlsregistry.Registry) -> None:
        """The base as an index of an amd64 and an arm64 busybox image, each also under
        its own platform tag (BASE_TAG-arm64)."""
        endpoint = Endpoint(registry.url, registry.auth, str(registry.ca))
        children = {}
        for each in PLATFORM_WAYS["two platforms"]:
            local = build_platform_busybox(connect_docker(), each)
            tag = f"{BASE_TAG}-{each.rpartition('/')[2]}"
            self.client.tag(local, f"{HOST}/{BASE_NAME}", tag=tag, force=True)
            self.push(f"{HOST}/{BASE_NAME}:{tag}", registry)
            children[each] = tag
        put_index(endpoint, BASE_NAME, [BASE_TAG], children)

    def platforms(self) -> Scenario:
        """The cold tree built, verified and published for one platform (linux/amd64) and
        for two (arm64 under QEMU), each from nothing; docker-pkg, which cannot build for
        another platform, builds it for the daemon's own."""
        require_arm64_emulation()
        s = self.sizes
        tree, parents = self.tree("cold")
        refs = [(name, VERSION) for name in parents]
        scenario = Scenario(
            "platforms",
            f"Cold build+verify+publish for one and two platforms, {s.cold_count} images, "
            f"depth {s.cold_depth} (dockerpkg --jobs {self.jobs}; arm64 under QEMU)",
        )
        ways: list[str] = [*PLATFORM_WAYS] + ([] if self.ours_only else [THEIRS])
        for index, _ in enumerate(self.rounds()):
            for way in ways if index % 2 == 0 else ways[::-1]:
                self.remove_images(PREFIXES["cold"])
                with self.registry(auth=True) as registry:
                    if way in PLATFORM_WAYS:
                        self.push_platform_base(registry)
                        config = self.platforms_config(PLATFORM_WAYS[way])
                        args: list[str | Path] = ["build", "--jobs", str(self.jobs), tree]
                        run, _ = self.run(
                            OURS, args, label="platforms", auth=True,
                            timeout=TIMEOUT_S["platforms"], config=config,
                        )  # fmt: skip
                        wanted = set(PLATFORM_WAYS[way])
                        endpoint = Endpoint(registry.url, registry.auth, str(registry.ca))
                        done = sum(
                            index_platforms(endpoint, name, tag) == wanted for name, tag in refs
                        )
                    else:
                        run, _ = self.run(
                            THEIRS, ["build", tree], label="platforms", auth=True,
                            timeout=TIMEOUT_S["platforms"],
                        )  # fmt: skip
                        done = tlsregistry.count_published(registry, refs)
                run.extra["way"] = way
                run.extra["published"] = done
                if done != len(refs):
                    run.extra["problem"] = f"{done}/{len(refs)} published"
                scenario.runs.append(run)
        figures = {}
        for way in ways:
            runs = [r for r in scenario.runs if r.extra["way"] == way]
            figures[way] = median(runs)
            name = "docker-pkg, the daemon's platform" if way == THEIRS else f"dockerpkg, {way}"
            scenario.rows.append(Row(name, seconds_text(figures[way], runs)))
            scenario.figures[f"{way.replace(' ', '_').replace('-', '_')}_seconds"] = figures[way]
        one, two = figures["one platform"], figures["two platforms"]
        if one and two:
            scenario.rows.append(Row("two platforms / one", times(two / one, down=False)))
            scenario.figures["two_over_one"] = two / one
        scenario.notes.append(
            "each build starts from nothing: a fresh registry holding the base as an index of "
            "amd64 and arm64 busybox images, no image of the tree on the daemon"
        )
        return scenario

    def refs(self) -> Scenario:
        """`refs` over a repository of 20,000 files (1,000 naming images of the cold tree)
        against `git grep` of the same pattern: time and memory."""
        tree, parents = self.tree("cold")
        repo = self.fresh_dir("refs-repo")
        written = generate_repo(repo, HOST, [(n, VERSION) for n in sorted(parents)], 20000, 1000)
        scenario = Scenario("refs", f"refs over 20,000 files, {written} references (dockerpkg)")
        pattern = rf"{HOST.replace('.', '[.]')}/[a-z0-9.-]+(:[A-Za-z0-9_.-]+)?"
        commands = {
            OURS: [DOCKERPKG, "-c", self.config(auth=False), "refs", "--json", tree, repo],
            "git grep": ["git", "grep", "-n", "-E", pattern],
        }
        for index in range(-1, self.sizes.repeat):  # -1: warm-up (page cache), not timed
            for tool, command in commands.items():
                output = self.path("runs", f"refs-{tool.replace(' ', '-')}-{index}.out")
                run = run_measured(
                    tool, command, env=self.env, cwd=repo, log=self.path("runs", "refs.log"),
                    timeout=TIMEOUT_S["refs"], stdout=output,
                )  # fmt: skip
                if tool == OURS and run.returncode == 0:
                    found = len(json.loads(output.read_text(encoding="utf-8"))["uses"])
                    run.extra["references"] = found
                    if found != written:
                        run.extra["problem"] = f"{found}/{written} references found"
                if index >= 0:
                    scenario.runs.append(run)
        for tool in commands:
            runs = [r for r in scenario.runs if r.tool == tool]
            memory = max((r.max_rss_mb for r in runs), default=0.0)
            scenario.rows += [
                Row(f"{tool}: wall time", seconds_text(median(runs), runs)),
                Row(f"{tool}: peak memory (max RSS)", f"{memory:.0f} MB"),
            ]
            scenario.figures[f"{tool.replace(' ', '_')}_seconds"] = median(runs)
            scenario.figures[f"{tool.replace(' ', '_')}_max_rss_mb"] = memory
        scenario.notes.append(
            "dockerpkg reads every file once, decodes only those naming the registry, and "
            "works out states and edits; git grep only prints the matching lines"
        )
        return scenario

    def noop(self) -> Scenario:
        tree, parents = self.tree("big")
        count = len(parents)
        scenario = Scenario("noop", f"No-op build, {count} images all published")
        data = self.fresh_dir("noop-registry") / "data"
        try:
            with self.registry(auth=False, data=data) as registry:
                say(f"noop: publishing {count} images through the registry API")
                begin = time.perf_counter()
                # As a publish leaves them: the version tag, then `latest` on it (its blobs
                # are mounted by then).
                for tag in (VERSION, "latest"):
                    tlsregistry.publish_copies(
                        registry, BASE_NAME, BASE_TAG, [(name, tag) for name in parents]
                    )
                say(f"noop: published in {time.perf_counter() - begin:.1f} s")
                self._noop_runs(scenario, tree, "noauth")
            with self.registry(auth=True, data=data):
                self._noop_runs(scenario, tree, "htpasswd")
                self._noop_runs(scenario, tree, "htpasswd", cap=NOOP_CAP)
            with self.registry(auth=True, data=data, token=True):
                self._noop_runs(scenario, tree, "token")
                self._noop_runs(scenario, tree, "token", cap=NOOP_CAP)
        finally:
            shutil.rmtree(data, ignore_errors=True)
        self._noop_rows(scenario)
        scenario.notes.append("dockerpkg: `build`; docker-pkg: `build` (refreshes the base first)")
        scenario.notes.append(
            f"cap of {NOOP_CAP}: dockerpkg with `registries: {{{HOST}: {{max_requests: "
            f"{NOOP_CAP}}}}}`, against docker-pkg's runs on the same registry (it has no such "
            "key: one request at a time)"
        )
        return scenario

    def _noop_rows(self, scenario: Scenario) -> None:
        """Each registry's row (dockerpkg against docker-pkg, on the same registry), then
        the capped runs' rows and what the cap costs dockerpkg."""
        targets = {"htpasswd": 2.0, "noauth": 4.0, "token": None}
        titles = {"htpasswd": "htpasswd", "noauth": "no auth", "token": "Bearer tokens"}

        def runs(tool: str, kind: str, cap: int | None) -> list[Run]:
            return [
                r
                for r in scenario.runs
                if r.tool == tool and r.extra["registry"] == kind and r.extra["cap"] == cap
            ]

        for kind, target in targets.items():
            theirs = runs(THEIRS, kind, None)
            for cap in (None, NOOP_CAP):
                ours = runs(OURS, kind, cap)
                if not ours:
                    continue
                title = f"registry with {titles[kind]}"
                if cap is not None:
                    title += f", dockerpkg capped at {cap}"
                row, ratio = speedup_row(title, ours, theirs, target if cap is None else None)
                problems = [r.extra["problem"] for r in theirs if r.extra.get("problem")]
                if problems:
                    # No ratio against a run that did not do the same job.
                    row = attrs.evolve(row, theirs=f"n/a ({problems[0]})", ratio="", result="")
                    ratio = None
                scenario.rows += [row, busy_row("  all CPUs busy during the run", ours, theirs)]
                key = kind if cap is None else f"{kind}_cap{cap}"
                scenario.figures[f"speedup_{key}"] = ratio
                scenario.figures[f"dockerpkg_seconds_{key}"] = median(ours)
                scenario.figures[f"dockerpkg_registries_{key}"] = [
                    r.extra.get("registries") for r in ours
                ]
            scenario.figures[f"docker_pkg_seconds_{kind}"] = median(theirs)
            free, capped = median(runs(OURS, kind, None)), median(runs(OURS, kind, NOOP_CAP))
            if free and capped:
                scenario.rows.append(
                    Row(
                        f"  the cap's cost to dockerpkg ({titles[kind]})",
                        times(capped / free, down=False),
                    )
                )

    def _noop_runs(self, scenario: Scenario, tree: Path, kind: str, cap: int | None = None) -> None:
        """The no-op rounds on the registry running now (KIND: noauth, htpasswd, token);
        with CAP, dockerpkg's alone, with its requests to the registry capped."""
        auth = kind != "noauth"
        label = f"noop-{kind}" + (f"-cap{cap}" if cap is not None else "")
        theirs_failed = False
        for timed, tools in self.rounds(warmup=True):
            for tool in tools:
                if tool == THEIRS and (cap is not None or theirs_failed):
                    continue
                report = self.path("runs", f"{label}-report.json")
                args: list[str | Path] = ["build", tree]
                if tool == OURS:
                    args = ["build", "--report", report, tree]
                run, _ = self.run(
                    tool,
                    args,
                    label=label if timed else f"{label}-warmup",
                    auth=auth,
                    timeout=_noop_timeout(tool, kind),
                    config=self.config(auth=auth, cap=cap) if tool == OURS else None,
                )
                text = Path(run.log).read_text(errors="replace")
                record = timed
                rebuilt = "Built image" in text or _docker_pkg_would_build(text)
                if tool == THEIRS and kind == "token" and (rebuilt or run.returncode is None):
                    # Its published check is a plain GET with the netrc's Basic login, which
                    # a Bearer-token registry answers 401: nothing counts as published, so it
                    # rebuilds and pushes every image. Once shows it: it is not run again.
                    run.extra["problem"] = "sees nothing published: rebuilds every image"
                    theirs_failed = record = True
                if not record:
                    continue
                run.extra.update(auth=auth, registry=kind, cap=cap)
                if tool == OURS:
                    if "Done:" in text:
                        run.extra["problem"] = "did work"
                    run.extra["registries"] = _report_registries(report)
                if tool == THEIRS and rebuilt and not run.extra.get("problem"):
                    run.extra["problem"] = "did work"
                report.unlink(missing_ok=True)
                scenario.runs.append(run)

    def update(self) -> Scenario:
        _, parents = self.tree("big")
        root = next(name for name, mine in parents.items() if not mine)
        scenario = Scenario("update", f"update of the root of {len(parents)} images")
        for timed, tools in self.rounds(warmup=True):
            for tool in tools:
                if tool == OURS and "update" not in self.verbs:
                    continue
                tree = self.copy_tree("big", f"update-{tool}")
                run, _ = self.run(
                    tool,
                    ["update", root, tree],
                    label="update" if timed else "update-warmup",
                    auth=False,
                    timeout=TIMEOUT_S["update"],
                )
                if not timed:
                    continue
                changed = count_updated(tree)
                run.extra["changelogs_updated"] = changed
                if changed != len(parents):
                    run.extra["problem"] = f"{changed}/{len(parents)} changelogs updated"
                scenario.runs.append(run)
        return _with_speedup(scenario, 5.0, "update")

    def diamonds(self) -> Scenario:
        s = self.sizes
        _, parents = self.tree("diamonds")
        root = next(name for name, mine in parents.items() if not mine)
        scenario = Scenario(
            "diamonds", f"update of the root of {s.diamond_levels} stacked diamonds"
        )
        capped = False
        for _, tools in self.rounds():
            for tool in tools:
                if tool == OURS and "update" not in self.verbs:
                    continue
                if tool == THEIRS and capped:
                    continue  # exponential: one run at the cap says enough
                tree = self.copy_tree("diamonds", f"diamonds-{tool}")
                run, _ = self.run(
                    tool,
                    ["update", root, tree],
                    label="diamonds",
                    auth=False,
                    timeout=DIAMONDS_CAP_S,
                )
                capped = capped or (tool == THEIRS and run.returncode is None)
                if run.returncode is not None:
                    changed = count_updated(tree)
                    run.extra["changelogs_updated"] = changed
                    if changed != len(parents):
                        run.extra["problem"] = f"{changed}/{len(parents)} changelogs updated"
                scenario.runs.append(run)
        ours = [r for r in scenario.runs if r.tool == OURS]
        theirs = [r for r in scenario.runs if r.tool == THEIRS]
        mine = median(ours)
        row, _ = speedup_row("wall time", ours, theirs, None)
        met = mine is not None and mine < 1.0
        row = attrs.evolve(row, target="dockerpkg < 1 s", result=verdict(met, mine))
        if not ours:
            row = attrs.evolve(row, ours="n/a (no update verb)", result="n/a")
        scenario.rows.append(row)
        scenario.figures["dockerpkg_seconds"] = mine
        if capped:
            scenario.notes.append(
                f"docker-pkg was stopped at {DIAMONDS_CAP_S:.0f} s and not run again"
            )
        return scenario

    def prune(self) -> Scenario:
        tree, parents = self.tree("cold")
        wanted = {f"{HOST}/{name}:{VERSION}" for name in parents}
        scenario = Scenario("prune", f"prune with nothing to remove, {len(parents)} images")
        with self.registry(auth=True):
            if not wanted <= self.local_labels(PREFIXES["cold"]):
                say("prune: building the tree first (not timed)")
                run, _ = self.run(
                    OURS,
                    ["build", "--jobs", str(self.jobs), tree],
                    label="prune-setup",
                    auth=True,
                    timeout=TIMEOUT_S["cold"],
                )
                if not run.ok:
                    raise RuntimeError("could not build the tree to prune")
        before = self.local_labels(PREFIXES["cold"])
        with self.registry(auth=False):
            for timed, tools in self.rounds(warmup=True):
                for tool in tools:
                    if tool == OURS and "prune" not in self.verbs:
                        continue
                    run, _ = self.run(
                        tool,
                        ["prune", tree],
                        label="prune" if timed else "prune-warmup",
                        auth=False,
                        timeout=TIMEOUT_S["prune"],
                    )
                    if not timed:
                        continue
                    after = self.local_labels(PREFIXES["cold"])
                    if after != before:
                        run.extra["problem"] = f"removed {len(before - after)} tags"
                    scenario.runs.append(run)
        return _with_speedup(scenario, 5.0, "prune")

    def plan(self) -> Scenario:
        """`plan --offline --json` of the big tree and of one PLAN_FACTOR times its size, with
        credentials configured and definition labels on: every step of planning runs (the
        publications, the bases each build records)."""
        sizes = {}
        runs: dict[str, list[Run]] = {}
        for key in ("big", "bigger"):
            tree, parents = self.tree(key)
            sizes[key] = len(parents)
            runs[key] = self._plan_runs(key, tree, len(parents))
        small, large = sizes["big"], sizes["bigger"]
        scenario = Scenario(
            "plan",
            f"plan --offline --json, {small:,} and {large:,} images, with credentials (dockerpkg)",
        )
        scenario.runs += runs["big"] + runs["bigger"]
        mine, more = median(runs["big"]), median(runs["bigger"])
        growth = more / mine if mine and more is not None else None
        memory = max((r.max_rss_mb for r in runs["big"]), default=None)
        scenario.rows += [
            Row(
                f"wall time, {small:,} images",
                seconds_text(mine, runs["big"]),
                target="< 2 s",
                result=verdict(mine is not None and mine < 2.0, mine),
            ),
            Row(f"wall time, {large:,} images", seconds_text(more, runs["bigger"])),
            Row(
                f"  {PLAN_FACTOR}x the images: time ratio",
                times(growth, down=False) if growth is not None else "n/a",
                target=f"< {PLAN_GROWTH:g}x",
                result=verdict(growth is not None and growth < PLAN_GROWTH, growth),
            ),
            Row(
                f"peak memory (max RSS), {small:,} images",
                f"{memory:.0f} MB" if memory is not None else "n/a",
                target="< 300 MB",
                result=verdict(memory is not None and memory < 300, memory),
            ),
        ]
        scenario.figures.update(seconds=mine, seconds_bigger=more, growth=growth, max_rss_mb=memory)
        return scenario

    def collect(self) -> Scenario:
        """The pytest plugin's collection of the big tree (render and lint items, no Docker)
        against what it is made of: `dockerpkg lint` of the same tree, and pytest collecting
        nothing (its own start-up). Collection reads, renders and lints the tree once."""
        tree, parents = self.tree("big")
        count = len(parents)
        empty = self.path("empty-tests")
        empty.mkdir(exist_ok=True)
        pytest = [Path(sys.prefix, "bin", "pytest"), "-q", "-p", "no:cacheprovider"]
        pytest += ["--collect-only", "--rootdir", empty]
        commands: dict[str, list[str | Path]] = {
            "collect": [*pytest, "--dockerpkg", tree, "--dockerpkg-config",
                        self.config(auth=False), empty],
            "lint": [DOCKERPKG, "-c", self.config(auth=False), "lint", tree],
            "pytest": [*pytest, empty],
        }  # fmt: skip
        runs: dict[str, list[Run]] = {key: [] for key in commands}
        for index in range(-1, self.sizes.repeat):  # -1: warm-up, not timed
            for key, command in commands.items():
                folder = self.fresh_dir(f"collect-{key}")
                run = run_measured(
                    key, command, env=dict(self.env), cwd=folder, log=folder / "output.log",
                    timeout=TIMEOUT_S["collect"],
                )  # fmt: skip
                say(f"collect: {key} {run.seconds:.2f} s (exit {run.returncode})")
                if index >= 0:
                    runs[key].append(run)
        # pytest exits 5 when it collects nothing; lint exits 1 on error findings.
        allowed = {"collect": {0}, "lint": {0, 1}, "pytest": {5}}
        collected, lint, bare = (
            statistics.median(r.seconds for r in runs[k])
            if runs[k] and all(r.returncode in allowed[k] for r in runs[k])
            else None
            for k in ("collect", "lint", "pytest")
        )
        budget = lint + bare if lint is not None and bare is not None else None
        scenario = Scenario("collect", f"pytest --dockerpkg --collect-only, {count:,} images")
        scenario.runs += [r for key in commands for r in runs[key]]
        scenario.rows += [
            Row(
                "collection, render and lint items",
                seconds_text(collected, runs["collect"]),
                target="< lint + pytest" + (f" ({budget:.2f} s)" if budget else ""),
                result=verdict(None not in (collected, budget) and collected < budget, collected),
            ),
            Row("dockerpkg lint", seconds_text(lint, runs["lint"])),
            Row("pytest collecting nothing", seconds_text(bare, runs["pytest"])),
        ]
        scenario.figures.update(seconds=collected, lint_seconds=lint, pytest_seconds=bare)
        return scenario

    def _plan_runs(self, key: str, tree: Path, count: int) -> list[Run]:
        found = []
        for index in range(-1, self.sizes.repeat):  # -1: warm-up, not timed
            output = self.path("runs", f"plan-{key}-{index}.json")
            run, _ = self.run(
                OURS,
                ["plan", "--offline", "--json", tree],
                label=f"plan-{key}" if index >= 0 else f"plan-{key}-warmup",
                auth=True,
                timeout=TIMEOUT_S["plan"],
                stdout=output,
            )
            if index < 0:
                continue
            with contextlib.suppress(ValueError, OSError):
                plan = json.loads(output.read_text(encoding="utf-8"))
                images = len(plan.get("images", []))
                run.extra["images"] = images
                if images != count:
                    run.extra["problem"] = f"{images}/{count} images in the plan"
                elif not plan.get("publish") or any(i["records"] is None for i in plan["images"]):
                    run.extra["problem"] = "planned without publishing or without records"
            output.unlink(missing_ok=True)
            found.append(run)
        return found


# --- Helpers ----------------------------------------------------------------------------------


def read_parents(tree: Path) -> dict[str, list[str]]:
    """Each image's in-tree parents, from the control files gentree writes."""
    parents: dict[str, list[str]] = {}
    for folder in sorted(p for p in tree.iterdir() if p.is_dir()):
        control = folder / "control"
        depends: list[str] = []
        if control.exists():
            for line in control.read_text(encoding="utf-8").splitlines():
                if line.startswith("Depends:"):
                    depends = [d.strip() for d in line.partition(":")[2].split(",") if d.strip()]
        parents[folder.name] = depends
    return parents


def _noop_timeout(tool: str, kind: str) -> float:
    """A no-op's time limit: docker-pkg on a token registry rebuilds every image (see
    _noop_runs), so it is stopped once that shows instead of after TIMEOUT_S."""
    return NOOP_TOKEN_THEIRS_S if (tool, kind) == (THEIRS, "token") else TIMEOUT_S["noop"]


def _docker_pkg_would_build(output: str) -> bool:
    """Whether docker-pkg's output lists images under "Will build the following images:"
    (a no-op lists none)."""
    _, found, rest = output.partition("Will build the following images:")
    if not found:
        return False
    listed = rest.partition("== Step 1")[0]
    return any(line.strip() for line in listed.splitlines())


def _report_registries(report: Path) -> list[dict[str, Any]] | None:
    """The requests per registry in dockerpkg's report (its `registries`), if it has them."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = data.get("registries") if isinstance(data, dict) else None
    return found if isinstance(found, list) else None


def count_updated(tree: Path) -> int:
    """How many changelogs no longer start with the generated version."""
    changed = 0
    for changelog in tree.glob("*/changelog"):
        first = changelog.read_text(encoding="utf-8").partition("\n")[0]
        if f"({VERSION})" not in first:
            changed += 1
    return changed


def docker_login(folder: Path, username: str, password: str) -> None:
    """A Docker config holding the registry login, as `docker login` writes it: what
    docker-pkg's pulls from the htpasswd registry authenticate with (its config's credentials
    are for pushes only)."""
    folder.mkdir(mode=0o700)
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    config = folder / "config.json"
    config.touch(mode=0o600)
    config.write_text(json.dumps({"auths": {HOST: {"auth": token}}}) + "\n", encoding="utf-8")


def compile_dockerpkg() -> None:
    """Byte-compile dockerpkg's modules, as pip does for docker-pkg when installing it: with
    PYTHONDONTWRITEBYTECODE set (or a read-only checkout) an editable install would compile
    every module it imports again on every run, a few hundred milliseconds each time."""
    package = ROOT / "dockerpkg"
    if not compileall.compile_dir(package, quiet=1):
        raise RuntimeError(f"could not byte-compile {package}")


def dockerpkg_verbs() -> set[str]:
    """Which of dockerpkg's verbs exist (update and prune may land later)."""
    verbs = set()
    for verb in ("build", "plan", "update", "prune"):
        result = subprocess.run(
            [DOCKERPKG, verb, "--help"], capture_output=True, check=False, timeout=60
        )
        if result.returncode == 0:
            verbs.add(verb)
    return verbs


def ensure_docker_pkg() -> None:
    """docker-pkg 4.0.4 in its own venv (it pins docker<6, which dockerpkg cannot share)."""
    if DOCKER_PKG.exists():
        return
    say(f"installing docker-pkg {DOCKER_PKG_VERSION} into {DOCKER_PKG_VENV}")
    commands: list[list[str | Path]] = [
        [sys.executable, "-m", "venv", "--clear", DOCKER_PKG_VENV],
        [DOCKER_PKG_VENV / "bin" / "pip", "install", "-q", f"docker-pkg=={DOCKER_PKG_VERSION}"],
    ]
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(DOCKER_PKG_VENV, ignore_errors=True)  # no half-made venv next time
            raise RuntimeError(f"{command[0]} failed:\n{result.stdout}{result.stderr}")


def machine_facts(client: docker.APIClient) -> dict[str, Any]:
    version = client.version()
    info = client.info()
    cpu = next(
        (
            line.partition(":")[2].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    registry_version = subprocess.run(
        ["docker-registry", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    commit = dockerpkg_revision()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "dockerd": version.get("Version"),
        "docker_api": version.get("ApiVersion"),
        "storage_driver": info.get("Driver"),
        "registry": registry_version,
        "python": platform.python_version(),
        "dockerpkg_commit": commit,
        "docker_pkg": DOCKER_PKG_VERSION,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def dockerpkg_revision() -> str:
    """The commit of the dockerpkg being measured, and whether its code differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "dockerpkg")
    return commit + (" (with uncommitted changes)" if dirty else "")


def facts_text(facts: dict[str, Any]) -> str:
    return "\n".join(
        [
            "== Machine ==",
            f"nproc {facts['nproc']} ({facts['cpu']}), {facts['memory_gb']} GB RAM, "
            f"kernel {facts['kernel']}",
            f"dockerd {facts['dockerd']} (API {facts['docker_api']}, {facts['storage_driver']}), "
            f"{facts['registry']}",
            f"Python {facts['python']}; dockerpkg {facts['dockerpkg_commit']}; "
            f"docker-pkg {facts['docker_pkg']}",
            f"load average at start {facts['load_average_at_start']}, "
            f"at end {facts.get('load_average_at_end')}",
            *(
                [f"WARNING: dockerpkg changed during the run: now {facts['commit_at_end']}"]
                if facts.get("commit_at_end", facts["dockerpkg_commit"])
                != facts["dockerpkg_commit"]
                else []
            ),
        ]
    )


@contextlib.contextmanager
def terminate_gracefully() -> Iterator[None]:
    """SIGTERM runs the same cleanup as Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=None, help="runs per tool (default 3)")
    parser.add_argument("--quick", action="store_true", help="small trees, one run: a smoke test")
    parser.add_argument(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS[BuildEngine.BUILDKIT],
        help="dockerpkg --jobs for cold builds (default: dockerpkg's own default)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=os.environ.get("BENCH_JSON") or None,
        help="save raw figures here (default: $BENCH_JSON, e.g. with `make bench`)",
    )
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument(
        "--dockerpkg-only",
        action="store_true",
        help="skip docker-pkg (no ratios): quicker when only dockerpkg's figures matter",
    )
    parser.add_argument(
        "--publish",
        choices=("per_image", "all_or_nothing"),
        default="per_image",
        help="dockerpkg --publish MODE for the cold builds",
    )
    parser.add_argument(
        "--no-definition-labels",
        action="store_true",
        help="run dockerpkg with `definition_labels: false` (no drift labels on its builds)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = QUICK if args.quick else FULL
    sizes = attrs.evolve(base, repeat=args.repeat) if args.repeat else base
    if os.geteuid() != 0:
        say("needs root: the registry listens on port 443 and its CA goes to /etc/docker")
        return 1
    ensure_docker_pkg()
    compile_dockerpkg()
    if not tlsregistry.port_free():
        say(f"{HOST}:443 is taken; the benchmark registry needs it")
        return 1
    client = connect_docker().api
    work = Path(tempfile.mkdtemp(prefix="dockerpkg-bench-"))
    say(f"work folder {work}")
    facts = machine_facts(client)
    chosen = [s for s in SCENARIOS if args.only is None or s in args.only]
    with contextlib.ExitStack() as stack:
        stack.enter_context(terminate_gracefully())
        if not args.keep:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        else:
            stack.callback(say, f"kept {work}")
        stack.callback(remove_bench_images, client)
        tls = tlsregistry.make_tls(work / "tls")
        password = secrets.token_hex(12)
        login = tlsregistry.make_login(work, "bench", password)
        netrc = work / "netrc"
        netrc.touch(mode=0o600)
        netrc.write_text(f"machine {HOST} login bench password {password}\n", encoding="utf-8")
        docker_login(work / "docker-login", "bench", password)
        stack.enter_context(tlsregistry.trusted_by_docker(tls.ca))
        for folder in ("docker-config", "xdg", "tmp"):
            (work / folder).mkdir()
        env = dict(os.environ)
        for key in ("NETRC", "REQUESTS_CA_BUNDLE", "DOCKER_CONFIG", "XDG_CONFIG_HOME"):
            env.pop(key, None)
        env.update(
            DOCKER_CONFIG=str(work / "docker-config"),  # no stray credentials
            XDG_CONFIG_HOME=str(work / "xdg"),  # no ~/.config/docker-pkg.yaml
            TMPDIR=str(work / "tmp"),  # run logs and build contexts go away with the rest
            # Both tools read the author from here; without them docker-pkg runs `git config`
            # twice per image, which would only make it slower.
            DEBFULLNAME="Bench",
            DEBEMAIL="bench@example.org",
        )
        build_busybox_base(connect_docker(), BASE_LABEL)
        verbs = dockerpkg_verbs()
        bench = Bench(
            work,
            sizes,
            args.jobs,
            tls,
            login,
            client,
            env,
            verbs,
            ours_only=args.dockerpkg_only,
            definition_labels=not args.no_definition_labels,
            publish=args.publish,
        )
        say(f"dockerpkg verbs: {', '.join(sorted(verbs))}; scenarios: {', '.join(chosen)}")
        results: dict[str, Any] = {
            "command": " ".join(["bench/bench.py", *(argv or sys.argv[1:])]),
            "quick": args.quick,
            "repeat": sizes.repeat,
            "jobs": args.jobs,
            "sizes": attrs.asdict(sizes),
            "machine": facts,
            "scenarios": {},
        }
        runners: dict[str, Callable[[], Scenario]] = {
            "cold": bench.cold,
            "noop": bench.noop,
            "update": bench.update,
            "diamonds": bench.diamonds,
            "prune": bench.prune,
            "plan": bench.plan,
            "collect": bench.collect,
            "bases": bench.bases,
            "cache": bench.cache,
            "refs": bench.refs,
            "platforms": bench.platforms,
        }
        for key in chosen:
            scenario = runners[key]()
            bench.scenarios.append(scenario)
            results["scenarios"][key] = scenario.to_json()
            print(scenario.table() + "\n", flush=True)
        facts["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        # The work tree may be shared: say so when the code measured moved under the run.
        facts["commit_at_end"] = dockerpkg_revision()
        print(f"== Summary (median of {sizes.repeat}; ratio = docker-pkg / dockerpkg) ==\n")
        if args.quick:
            print("(--quick: trees smaller than the targets assume; results are a smoke test)\n")
        for scenario in bench.scenarios:
            print(scenario.table() + "\n")
        print(facts_text(facts))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
            say(f"raw figures in {args.json}")
    return 0


def cached_run_steps(logs: Path) -> int:
    """How many RUN steps the build logs in LOGS report as CACHED (BuildKit's progress)."""
    count = 0
    for log in logs.glob("*.log"):
        text = log.read_text(encoding="utf-8", errors="replace")
        runs = {m[1] for m in re.finditer(r"^#(\d+) \[[^\]]*\] RUN ", text, re.MULTILINE)}
        count += sum(1 for v in runs if re.search(rf"^#{v} CACHED$", text, re.MULTILINE))
    return count


def remove_bench_images(client: docker.APIClient) -> None:
    """Every image tag this benchmark made: 127.0.0.1/<its prefixes> and the base."""
    prefixes = tuple(f"{HOST}/{p}" for p in (*PREFIXES.values(), BASE_NAME, "base/root"))
    # The platforms scenario's per-platform base images share BASE_NAME: removed above.
    for image in client.images():
        for tag in image.get("RepoTags") or ():
            if tag.startswith(prefixes):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    client.remove_image(tag, force=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("interrupted; cleaned up")
        sys.exit(130)
