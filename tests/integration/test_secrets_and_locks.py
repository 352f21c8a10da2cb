"""Secrets and concurrency, with the real daemon, real registries and the real program.

- A whole cycle (plan, apply, a failed build, wrong passwords, update, build, prune) runs as
  `python -m dockerpkg` with --debug and --info, and every byte it printed or wrote is
  searched for the password in every form it could take (plain, and base64 however aligned,
  as in Basic headers and Docker's X-Registry-Auth) and for any Bearer token (a JWT).
- A build context holds the image folder's files after .dockerignore and nothing else: not
  the config file, not the password, even when the config sits inside the image folder.
- Two builds of one tree: the second refuses, or with --wait-lock waits and then has nothing
  left to do; the image is pushed once.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs
import docker
import pytest

from tests.integration.test_build import (
    BASE_REPOSITORY,
    NAMESPACE,
    SiteFactory,
    container_output,
    local_tags,
    write_chain,
)
from tests.support.trees import write_image

# test_build's fixture: a registry holding the base image; and no user or Docker config.
pytestmark = pytest.mark.usefixtures("isolated_home")

ROOT = Path(__file__).resolve().parents[2]
# Any JSON Web Token: what the token server issues, and what a leak of one would look like.
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


@attrs.frozen
class Run:
    """One `python -m dockerpkg` invocation: its arguments, status and raw output."""

    argv: tuple[str, ...]
    status: int
    out: bytes
    err: bytes

    @property
    def text(self) -> str:
        return (self.out + self.err).decode("utf-8", errors="replace")


@attrs.define
class Recorder:
    """Runs dockerpkg as a user would and keeps everything it printed."""

    cwd: Path
    runs: list[Run] = attrs.field(factory=list)

    def __call__(self, *argv: str | Path, env: dict[str, str] | None = None) -> Run:
        args = tuple(str(a) for a in argv)
        result = subprocess.run(
            [sys.executable, "-m", "dockerpkg", *args],
            capture_output=True,
            cwd=self.cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            timeout=600,
            check=False,
        )
        run = Run(args, result.returncode, result.stdout, result.stderr)
        self.runs.append(run)
        return run

    def run_dirs(self) -> list[Path]:
        """The run folders the runs announced (`Logs: DIR`)."""
        found = re.findall(rb"^Logs: (.+)$", b"\n".join(r.err for r in self.runs), re.M)
        return [self.cwd / os.fsdecode(path) for path in found]


def base64_forms(secret: bytes) -> set[bytes]:
    """Pieces that any base64 text containing SECRET must contain, whatever its alignment.

    Base64 works on 3-byte groups; SECRET may start at any of 3 offsets in one. For each, the
    characters made only of SECRET's bits are always the same; standard and URL alphabets.
    """
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret)
        start = math.ceil(offset * 8 / 6)
        end = (offset + len(secret)) * 8 // 6
        piece = encoded[start:end]
        forms |= {piece, piece.replace(b"+", b"-").replace(b"/", b"_")}
    return forms


def secret_forms(username: str, *secrets: str) -> dict[bytes, str]:
    """Each byte string that must never show -> what it is."""
    forms: dict[bytes, str] = {}
    for secret in secrets:
        forms[secret.encode()] = f"password {secret!r}"
        forms[base64.b64encode(f"{username}:{secret}".encode())] = f"Basic header of {secret!r}"
        for piece in base64_forms(secret.encode()):
            forms[piece] = f"base64 of {secret!r}"
    return forms


def files_under(*roots: Path, leave_out: Iterable[Path] = ()) -> Iterator[Path]:
    skipped = {path.resolve() for path in leave_out}
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder, name)
                if path.resolve() not in skipped and path.is_file():
                    yield path


def assert_nothing_leaks(recorder: Recorder, forms: dict[bytes, str], files: Iterable[Path]) -> int:
    """No secret in any output or file, and no token; returns how many sources were read."""
    sources: dict[str, bytes] = {}
    for number, run in enumerate(recorder.runs):
        sources[f"stdout of run {number} {run.argv}"] = run.out
        sources[f"stderr of run {number} {run.argv}"] = run.err
    for path in files:
        sources[str(path)] = path.read_bytes()
    for where, data in sources.items():
        for form, what in forms.items():
            assert form not in data, f"{what} in {where}"
        token = JWT.search(data)
        assert token is None, f"a token in {where}: {token.group()[:20]!r}..."
    return len(sources)


def steps(report: Path) -> dict[tuple[str, str], str]:
    data = json.loads(report.read_text(encoding="utf-8"))
    return {(s["op"], s["image"]): s["outcome"] for s in data["steps"]}


class TestSecretsNeverShown:
    """No password and no token in anything a run prints or writes."""

    def test_full_cycle_with_basic_auth(self, make_site: SiteFactory) -> None:
        site = make_site("htpasswd")
        write_chain(site)
        username, password = site.credentials.username, site.credentials.password
        wrong = "wrong-" + password[::-1]
        env_wrong = "envwrong-" + password[:16]
        config = site.config()
        no_login = site.config("no-login.yaml", username=None, password=None)
        wrong_config = site.config("wrong.yaml", password=wrong)
        env_login = {"DOCKERPKG_USERNAME": username, "DOCKERPKG_PASSWORD": password}
        run = Recorder(site.work)
        work = site.work
        root, child = site.name("root"), site.name("child")

        # Plan in every form, then apply the saved plan.
        assert run("-c", config, "plan", "tree").status == 0
        planned = run("-c", config, "--debug", "plan", "--json", "--out", "plan.json", "tree")
        assert planned.status == 0, planned.text
        assert run("-c", config, "--info", "plan", "--detailed-exitcode", "tree").status == 2
        applied = run(
            "-c", config, "--debug", "apply", "--report", "r1.json", "--run-dir", "run1",
            "plan.json",
        )  # fmt: skip
        assert applied.status == 0, applied.text
        assert site.tags("child") == ["1.0", "latest"]

        # A failed build and a failed verification: their errors are printed and reported.
        write_image(
            site.tree,
            site.name("broken"),
            "1.0",
            f'FROM {{{{ "{root}" | image_tag }}}}\nRUN echo building; exit 3\n',
            depends=[root],
        )
        write_image(
            site.tree,
            site.name("untested"),
            "1.0",
            f'FROM {{{{ "{root}" | image_tag }}}}\n',
            depends=[root],
            files={"test.sh": "#!/bin/sh\necho 'verification says no'\nexit 4\n"},
        )
        failed = run(
            "-c", config, "--debug", "build", "--report", "r2.json", "--run-dir", "run2", "tree"
        )
        assert failed.status == 1, failed.text
        assert steps(work / "r2.json")["build", site.name("broken")] == "failed"
        assert steps(work / "r2.json")["verify", site.name("untested")] == "failed"
        for name in ("broken", "untested"):
            for path in (site.tree / site.name(name)).iterdir():
                path.unlink()
            (site.tree / site.name(name)).rmdir()

        # Wrong passwords: from the config (refused when planning) and from the environment
        # (the plan was made with the right one, so the daemon's push is refused).
        for argv in (("plan", "tree"), ("apply", "--run-dir", "run3", "tree")):
            refused = run("-c", wrong_config, "--debug", *argv)
            assert refused.status == 1, refused.text
            assert "authentication refused" in refused.text
        assert run("-c", config, "update", child, "--reason", "First", "tree").status == 0
        assert run("-c", config, "plan", "--out", "plan2.json", "tree").status == 0
        pushed_wrong = run(
            "-c", config, "--debug", "apply", "--report", "r3.json", "--run-dir", "run4",
            "plan2.json", env={"DOCKERPKG_PASSWORD": env_wrong},
        )  # fmt: skip
        # The saved plan is checked against the registry first: refused there, nothing built.
        assert pushed_wrong.status == 1, pushed_wrong.text
        assert "authentication refused" in pushed_wrong.text
        assert "(asked before applying the saved plan)" in pushed_wrong.text
        assert not (work / "r3.json").exists()

        # Update (plan, saved plan, at once) and build with the login from the environment.
        assert run("-c", no_login, "--debug", "update", root, "tree").status == 0
        assert run("-c", no_login, "plan", "update", "--all", "--json", "tree").status == 0
        saved = run("-c", no_login, "plan", "update", root, "--out", "up.json", "tree")
        assert saved.status == 0, saved.text
        assert run("-c", no_login, "--debug", "apply", "update", "up.json").status == 0
        # An image whose build and verification print their whole environment: the login
        # from the environment reaches neither.
        write_image(
            site.tree,
            site.name("env"),
            "1.0",
            f'FROM {{{{ "{root}" | image_tag }}}}\nRUN env\n',
            depends=[root],
            files={"test.sh": "#!/bin/sh\nenv\n"},
        )
        built = run("-c", no_login, "--info", "build", "--report", "r4.json", "tree", env=env_login)
        assert built.status == 0, built.text
        assert site.tags("root") == ["1.0", "1.0-s2", "latest"]
        assert site.tags("env") == ["1.0", "latest"]
        env_log = (run.run_dirs()[-1] / f"{site.name('env')}.log").read_text(encoding="utf-8")
        # From the build (BuildKit's "#N " before a step's output) and the verification.
        assert len(re.findall(r"^(?:#\d+ )?PATH=", env_log, re.MULTILINE)) == 2, env_log
        assert "DOCKERPKG_" not in env_log

        # Prune the old versions, planned and saved, then at once.
        pruning = run("-c", config, "--debug", "plan", "prune", "--json", "--out", "p.json", "tree")
        assert pruning.status == 0, pruning.text
        pruned = run("-c", config, "--debug", "apply", "prune", "p.json")
        assert pruned.status == 0, pruned.text
        assert run("-c", config, "--debug", "prune", "tree").status == 0
        assert run("-c", config, "--info", "build", "tree").out == b"Plan: nothing to do.\n"

        assert all(b"Traceback" not in r.err for r in run.runs)
        # run1, run2, run4 and the default folder of the build with the login from the env.
        assert len(run.run_dirs()) == 4
        secret_files = [config, wrong_config]  # hold passwords on purpose
        files = list(files_under(work, *run.run_dirs(), leave_out=secret_files))
        assert {"plan.json", "r1.json", "r2.json", "r4.json", "p.json"} <= {f.name for f in files}
        forms = secret_forms(username, password, wrong, env_wrong)
        read = assert_nothing_leaks(run, forms, files)
        assert read > 60

    def test_bearer_tokens_and_password(self, make_site: SiteFactory) -> None:
        site = make_site("token")
        write_chain(site)
        username, password = site.credentials.username, site.credentials.password
        wrong = "wrong-" + password[::-1]
        config = site.config()
        wrong_config = site.config("wrong.yaml", password=wrong)
        run = Recorder(site.work)

        planned = run("-c", config, "--debug", "plan", "--json", "--out", "plan.json", "tree")
        assert planned.status == 0, planned.text
        applied = run(
            "-c", config, "--debug", "apply", "--report", "r.json", "--run-dir", "run1",
            "plan.json",
        )  # fmt: skip
        assert applied.status == 0, applied.text
        assert site.tags("child") == ["1.0", "latest"]
        assert run("-c", config, "--debug", "plan", "tree").status == 0
        refused = run("-c", wrong_config, "--debug", "build", "tree")
        assert refused.status == 1
        assert "authentication refused" in refused.text

        files = list(files_under(site.work, *run.run_dirs(), leave_out=[config, wrong_config]))
        assert_nothing_leaks(run, secret_forms(username, password, wrong), files)

    def test_the_checks_would_see_a_leak(self) -> None:
        """The search is sound: each form is found where a leak would put it."""
        secret = "0123456789abcdef0123456789abcdef"
        forms = secret_forms("dockerpkg", secret)
        header = base64.b64encode(f"dockerpkg:{secret}".encode())
        registry_auth = base64.urlsafe_b64encode(
            f'{{"username": "dockerpkg", "password": "{secret}"}}'.encode()
        )
        for leaked in (secret.encode(), header, registry_auth, b"x" + header):
            assert any(form in leaked for form in forms), leaked
        assert JWT.search(b"Authorization: Bearer eyJhbGciOiJSUzI1.eyJpc3MiOiJk.c2lnbmF0dXJl")


class TestBuildContext:
    """What a build sees is the image folder after .dockerignore: nothing else."""

    def test_only_the_image_folder_goes_in(
        self, make_site: SiteFactory, docker_client: docker.DockerClient
    ) -> None:
        site = make_site("htpasswd")
        name = site.name("ctx")
        folder = write_image(
            site.tree,
            name,
            "1.0",
            'FROM {{ "busybox" | image_tag }}\nCOPY . /ctx/\n',
            files={
                "app.txt": "the app\n",
                "conf/app.ini": "[app]\n",
                "notes.tmp": "not for the image\n",
                "conf/cache.tmp": "not for the image either\n",
                ".dockerignore": "*.tmp\n**/*.tmp\n",
            },
        )
        # Beside the image folder: another image, a file at the top of the tree, the config.
        write_image(site.tree, site.name("other"), "1.0", 'FROM {{ "busybox" | image_tag }}\n')
        (site.tree / "README").write_text("the tree\n", encoding="utf-8")
        # The config sits inside the image folder, with the password: it must stay out too.
        config = site.config(f"tree/{name}/dockerpkg.yaml")
        password = site.credentials.password

        outcome = subprocess.run(
            [sys.executable, "-m", "dockerpkg", "-c", config, "apply", "--quiet", site.tree],
            capture_output=True,
            text=True,
            cwd=site.work,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=300,
            check=False,
        )
        assert outcome.returncode == 0, outcome.stdout + outcome.stderr
        label = site.label("ctx", "1.0")
        assert site.tags("ctx") == ["1.0", "latest"]

        listing = container_output(docker_client, label, "find", "/ctx").split()
        assert sorted(listing) == [
            "/ctx",
            "/ctx/.dockerignore",
            "/ctx/Dockerfile",
            "/ctx/Dockerfile.template",
            "/ctx/app.txt",
            "/ctx/changelog",
            "/ctx/conf",
            "/ctx/conf/app.ini",
        ]
        assert (folder.path / "dockerpkg.yaml").is_file()  # left in place, only not sent

        # Not a byte of the password anywhere in the image: layers, config, history.
        saved = b"".join(docker_client.api.get_image(label))
        forms = secret_forms(site.credentials.username, password)
        with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
            for member in archive.getmembers():
                handle = archive.extractfile(member)
                data = handle.read() if handle is not None else b""
                for form, what in forms.items():
                    assert form not in data, f"{what} in {member.name}"
        assert password.encode() not in saved


class TestOneRunPerTree:
    """Two builds of one tree never overlap: the second refuses, or waits its turn."""

    def test_second_build_refuses_or_waits(
        self, make_site: SiteFactory, docker_client: docker.DockerClient
    ) -> None:
        site = make_site("htpasswd")
        started, release = site.work / "started", site.work / "release"
        write_image(
            site.tree,
            site.name("slow"),
            "1.0",
            'FROM {{ "busybox" | image_tag }}\nRUN echo slow > /etc/slow-marker\n',
            files={
                # The verification holds the first run until the test lets it go.
                "test.sh": f"#!/bin/sh\ntouch {started}\n"
                f"while [ ! -e {release} ]; do sleep 0.1; done\n"
                'docker run --rm "$1" cat /etc/slow-marker\n',
            },
        )
        config = site.config()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}

        def start(*argv: str | Path) -> subprocess.Popen[str]:
            return subprocess.Popen(
                [sys.executable, "-m", "dockerpkg", "-c", str(config), *map(str, argv)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=site.work,
                env=env,
            )

        first = start("build", "--report", "first.json", "tree")
        try:
            deadline = time.monotonic() + 120
            while not started.exists():
                assert first.poll() is None, first.communicate()
                assert time.monotonic() < deadline, "the first build never verified"
                time.sleep(0.1)

            refused = subprocess.run(
                [sys.executable, "-m", "dockerpkg", "-c", str(config), "build", "tree"],
                capture_output=True,
                text=True,
                cwd=site.work,
                env=env,
                timeout=60,
                check=False,
            )
            assert refused.returncode == 1
            assert refused.stderr == (
                f"tree: error: another dockerpkg run (pid {first.pid}) holds the lock on this "
                "tree; wait for it to finish, or use --wait-lock\n"
                "dockerpkg: 1 error(s); nothing was changed\n"
            )

            waiting = start("build", "--wait-lock", "tree")
            assert waiting.stderr is not None
            assert waiting.stderr.readline() == (
                f"tree: waiting for another dockerpkg run (pid {first.pid}) to release the lock\n"
            )
        finally:
            release.touch()
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, out + err
        assert "1 built, 1 verified, 1 published" in out
        out, err = waiting.communicate(timeout=300)
        assert waiting.returncode == 0, out + err
        # It planned after the first run ended: everything was built and published already.
        assert out == "Plan: nothing to do.\n"
        assert site.tags("slow") == ["1.0", "latest"]
        assert local_tags(docker_client, site.registry.host) == [
            site.label("slow", "1.0"),
            site.label("slow", "latest"),
        ]
        assert site.catalog() == sorted([BASE_REPOSITORY, f"{NAMESPACE}/{site.name('slow')}"])
