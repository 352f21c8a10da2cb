"""Secrets in the inputs: where the registry login comes from (environment, config file,
Docker config), the warning for a config file other users can read, config errors that never
quote the password, and plan digests that never cover it."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from dockerpkg.api import load_workspace
from dockerpkg.cli import main
from dockerpkg.core.config import Config, load_config, public_values
from dockerpkg.core.planner import OFFLINE, plan_build
from dockerpkg.core.serialize import plan_to_json
from dockerpkg.effects.configfile import read_config
from dockerpkg.effects.credentials import Credentials, credentials_for
from dockerpkg.errors import DockerPkgError, Severity
from tests.support.badinput import write_work
from tests.support.updates import write_tree

REGISTRY = "127.0.0.1:5000"


def docker_config(folder: Path, username: str, password: str) -> dict[str, str]:
    """A Docker client config in FOLDER logged in as USERNAME; the env naming it."""
    folder.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    (folder / "config.json").write_text(
        json.dumps({"auths": {REGISTRY: {"auth": auth}}}), encoding="utf-8"
    )
    return {"DOCKER_CONFIG": str(folder)}


def config(username: str | None = None, password: str | None = None) -> Config:
    return Config(registry=REGISTRY, username=username, password=password)


class TestPrecedence:
    """DOCKERPKG_USERNAME/DOCKERPKG_PASSWORD, then the config file, then the Docker config."""

    def test_environment_wins_over_config_and_docker_config(self, tmp_path: Path) -> None:
        env = docker_config(tmp_path / "docker", "docker-user", "docker-pw")
        env |= {"DOCKERPKG_USERNAME": "env-user", "DOCKERPKG_PASSWORD": "env-pw"}
        found = credentials_for(config("file-user", "file-pw"), env)
        assert found == Credentials("env-user", "env-pw")

    def test_environment_alone(self, tmp_path: Path) -> None:
        env = {"DOCKERPKG_USERNAME": "env-user", "DOCKERPKG_PASSWORD": "env-pw"}
        env |= {"DOCKER_CONFIG": str(tmp_path / "none")}
        assert credentials_for(config(), env) == Credentials("env-user", "env-pw")

    def test_config_wins_over_docker_config(self, tmp_path: Path) -> None:
        env = docker_config(tmp_path / "docker", "docker-user", "docker-pw")
        assert credentials_for(config("file-user", "file-pw"), env) == Credentials(
            "file-user", "file-pw"
        )

    def test_docker_config_when_nothing_else(self, tmp_path: Path) -> None:
        env = docker_config(tmp_path / "docker", "docker-user", "docker-pw")
        assert credentials_for(config(), env) == Credentials("docker-user", "docker-pw")

    def test_docker_config_found_through_home(self, tmp_path: Path) -> None:
        docker_config(tmp_path / ".docker", "home-user", "home-pw")
        found = credentials_for(config(), {"HOME": str(tmp_path)})
        assert found == Credentials("home-user", "home-pw")

    def test_nothing_anywhere(self, tmp_path: Path) -> None:
        assert credentials_for(config(), {"DOCKER_CONFIG": str(tmp_path)}) is None
        assert credentials_for(config(), {"HOME": str(tmp_path)}) is None

    def test_empty_variables_count_as_unset(self, tmp_path: Path) -> None:
        env = {"DOCKERPKG_USERNAME": "", "DOCKERPKG_PASSWORD": "", "HOME": str(tmp_path)}
        assert credentials_for(config("file-user", "file-pw"), env) == Credentials(
            "file-user", "file-pw"
        )


class TestMixing:
    """Each variable replaces its own key; a password never goes with another user."""

    def test_environment_password_with_config_username(self, tmp_path: Path) -> None:
        env = {"DOCKERPKG_PASSWORD": "env-pw", "HOME": str(tmp_path)}
        assert credentials_for(config("file-user", "file-pw"), env) == Credentials(
            "file-user", "env-pw"
        )
        assert credentials_for(config("file-user"), env) == Credentials("file-user", "env-pw")

    def test_environment_username_with_the_same_config_username(self, tmp_path: Path) -> None:
        env = {"DOCKERPKG_USERNAME": "file-user", "HOME": str(tmp_path)}
        assert credentials_for(config("file-user", "file-pw"), env) == Credentials(
            "file-user", "file-pw"
        )

    def test_config_password_not_sent_as_another_user(self, tmp_path: Path) -> None:
        env = {"DOCKERPKG_USERNAME": "env-user", "HOME": str(tmp_path)}
        assert credentials_for(config("file-user", "file-pw"), env) is None

    def test_another_user_finds_their_password_in_docker_config(self, tmp_path: Path) -> None:
        env = docker_config(tmp_path / "docker", "env-user", "docker-pw")
        env["DOCKERPKG_USERNAME"] = "env-user"
        assert credentials_for(config("file-user", "file-pw"), env) == Credentials(
            "env-user", "docker-pw"
        )

    def test_docker_config_of_another_user_is_not_used(self, tmp_path: Path) -> None:
        env = docker_config(tmp_path / "docker", "docker-user", "docker-pw")
        env["DOCKERPKG_USERNAME"] = "env-user"
        assert credentials_for(config(), env) is None

    def test_environment_password_without_any_username_is_an_error(self, tmp_path: Path) -> None:
        env = {"DOCKERPKG_PASSWORD": "lonely-secret", "HOME": str(tmp_path)}
        with pytest.raises(DockerPkgError) as caught:
            credentials_for(config(), env)
        assert str(caught.value) == (
            "DOCKERPKG_PASSWORD: error: set, but no username is: "
            "set DOCKERPKG_USERNAME or the config's username"
        )
        assert "lonely-secret" not in str(caught.value)


def write(path: Path, text: str, mode: int) -> str:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return str(path)


class TestReadableConfigWarning:
    """A config file holding a password that group or others can read earns a warning."""

    @pytest.mark.parametrize(
        ("mode", "readers"), [(0o644, "every user"), (0o604, "every user"), (0o640, "its group")]
    )
    def test_loose_file_with_password(self, tmp_path: Path, mode: int, readers: str) -> None:
        path = write(tmp_path / "config.yaml", "username: u\npassword: s3cret\n", mode)
        loaded = read_config(path, {"HOME": str(tmp_path)})
        assert [str(w) for w in loaded.warnings] == [
            f"{path}: warning: holds a password and is readable by {readers} "
            f"(mode {mode:04o}); run: chmod 600 {path}"
        ]
        assert loaded.warnings[0].severity is Severity.WARNING
        assert loaded.config.password == "s3cret"
        assert "s3cret" not in str(loaded.warnings[0])

    @pytest.mark.parametrize(
        ("text", "mode"),
        [
            ("username: u\npassword: s3cret\n", 0o600),
            ("username: u\npassword: s3cret\n", 0o400),
            ("registry: r.example\nusername: u\n", 0o644),
            ("registry: r.example\npassword:\n", 0o644),
        ],
    )
    def test_no_warning(self, tmp_path: Path, text: str, mode: int) -> None:
        path = write(tmp_path / "config.yaml", text, mode)
        assert read_config(path, {"HOME": str(tmp_path)}).warnings == ()

    def test_user_config_file_is_checked_too(self, tmp_path: Path) -> None:
        user = tmp_path / "xdg" / "docker-pkg.yaml"
        user.parent.mkdir()
        write(user, "password: s3cret\n", 0o644)
        path = write(tmp_path / "config.yaml", "registry: r.example\n", 0o644)
        loaded = read_config(path, {"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
        assert [w.location.path for w in loaded.warnings] == [str(user)]

    def test_cli_warns_and_still_succeeds(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        tree = tmp_path / "tree" / "app"
        tree.mkdir(parents=True)
        (tree / "Dockerfile.template").write_text("FROM scratch\n", encoding="utf-8")
        (tree / "changelog").write_text(
            "app (1.0) wikimedia; urgency=medium\n\n  * x\n\n"
            " -- A <a@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n",
            encoding="utf-8",
        )
        path = write(
            tmp_path / "config.yaml", "registry: r.example\nusername: u\npassword: s3cret\n", 0o644
        )
        status = main(["-c", path, "plan", "--offline", str(tmp_path / "tree")])
        out, err = capsys.readouterr()
        assert status == 0
        assert f"{path}: warning: holds a password and is readable by every user" in err
        assert f"run: chmod 600 {path}" in err
        assert "s3cret" not in out + err

    def test_saved_plans_warn_when_applied(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("DEBFULLNAME", "Tester")
        monkeypatch.setenv("DEBEMAIL", "tester@example.org")
        monkeypatch.chdir(tmp_path)
        write_tree(tmp_path, {"base": ("1.0", [])}, "username: u\npassword: s3cret\n")
        Path("config.yaml").chmod(0o644)
        warning = "config.yaml: warning: holds a password and is readable by every user"
        for argv in (["plan", "update", "base", "images", "--out", "p.json"], ["apply", "p.json"]):
            assert main(argv) == 0, argv
            _, err = capsys.readouterr()
            assert warning in err, argv


BASE = "registry: r.example\nusername: bot\n"


def digest_with(tree: Path, config: str) -> str:
    (tree / "config.yaml").write_text(config, encoding="utf-8")
    return load_workspace(str(tree / "images"), str(tree / "config.yaml"), {}).digest


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path, {"base": ("1.0", []), "app": ("2.0", ["base"])})


class TestDigest:
    """What a saved plan is checked against: every input but the password."""

    def test_password_does_not_change_it(self, tree: Path) -> None:
        first = digest_with(tree, BASE + "password: first-secret\n")
        assert digest_with(tree, BASE + "password: other-secret\n") == first
        assert digest_with(tree, BASE) == first

    def test_every_other_value_does(self, tree: Path) -> None:
        first = digest_with(tree, BASE + "password: s\n")
        assert digest_with(tree, "registry: r2.example\nusername: bot\npassword: s\n") != first
        assert digest_with(tree, BASE + "password: s\nhttp_proxy: http://p:3128\n") != first
        assert digest_with(tree, BASE + "password: s\ncustom: 1\n") != first

    def test_tree_contents_do(self, tree: Path) -> None:
        first = digest_with(tree, BASE)
        (tree / "images" / "app" / "extra.txt").write_text("x", encoding="utf-8")
        assert digest_with(tree, BASE) != first

    def test_no_hash_over_the_password_in_a_plan(self, tree: Path) -> None:
        """A hash of any text holding the password would let a plan's reader test guesses."""
        secret = "guessable"
        config_text = BASE + f"password: {secret}\n"
        (tree / "config.yaml").write_text(config_text, encoding="utf-8")
        workspace = load_workspace(str(tree / "images"), str(tree / "config.yaml"), {})
        plan = plan_to_json(
            plan_build(
                workspace.tree, workspace.config, OFFLINE, directory="i", digest=workspace.digest
            )
        )
        assert secret not in plan
        assert hashlib.sha256(config_text.encode()).hexdigest() not in plan
        assert secret not in public_values(workspace.config)

    def test_public_values_leave_out_the_password_only(self) -> None:
        config = load_config([("c.yaml", BASE + "password: s3cret\nnote: [a, b]\n")])
        values = public_values(config)
        assert "s3cret" not in values
        assert '"username": "bot"' in values
        assert '"note": ["a", "b"]' in values


class TestConfigErrors:
    """An error in a config file is located, but never quotes the line holding the password."""

    @pytest.mark.parametrize(
        "text",
        [
            'password: "S3CRET-VALUE\n',
            "password: 'S3CRET-VALUE\n",
            "password: S3CRET-VALUE: more\n",
            "password: S3CRET-VALUE\n\tregistry: x\n",
            "password: S3CRET-VALUE\n  indented: x\n",
            "password: [S3CRET-VALUE\n",
            "password: {a: S3CRET-VALUE}\n",
            "password:\n  - S3CRET-VALUE\n",
            "password: S3CRET-VALUE\npassword: S3CRET-VALUE\n",
            "password: &anchor S3CRET-VALUE\n",
            "password: S3CRET-VALUE\nscan_workers: S3CRET-VALUE\n",
        ],
    )
    def test_no_password_in_errors(
        self, tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = write(tmp_path / "config.yaml", text, 0o600)
        (tmp_path / "tree").mkdir()
        status = main(["-c", path, "plan", "--offline", str(tmp_path / "tree")])
        out, err = capsys.readouterr()
        assert status == 1
        assert err.startswith(f"{path}:"), err
        assert "S3CRET" not in out + err
        assert "Traceback" not in err


class TestProxyPassword:
    """A proxy URL with a password gets a warning naming the key and line, never the
    password; one without gets none."""

    def test_warning_names_the_key_not_the_password(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write_work(tmp_path)
        monkeypatch.chdir(tmp_path)
        config = tmp_path / "config.yaml"
        config.write_text(
            config.read_text() + "http_proxy: http://user:proxy-s3cret@proxy.example.org:3128\n"
        )
        assert main(["plan", "--offline", "images"]) == 0
        err = capsys.readouterr().err
        line = len(config.read_text().splitlines())
        assert (
            f"config.yaml:{line}: warning: 'http_proxy' holds a password: templates using "
            "apt_install write the proxy into the rendered Dockerfile"
        ) in err
        assert "proxy-s3cret" not in err
        assert err.count("holds a password") == 1  # apt_only_proxy falls back to it: once

    def test_no_warning_without_a_password(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write_work(tmp_path)
        monkeypatch.chdir(tmp_path)
        config = tmp_path / "config.yaml"
        config.write_text(config.read_text() + "http_proxy: http://proxy.example.org:3128\n")
        assert main(["plan", "--offline", "images"]) == 0
        assert "holds a password" not in capsys.readouterr().err
