"""find_credentials reads Docker's client config and runs real credential helper programs."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from dockerpkg.api.logins import find_credentials
from dockerpkg.effects.credentials import DOCKER_HUB_KEY, Credentials
from dockerpkg.errors import DockerPkgError

REGISTRY = "127.0.0.1:5000"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def write_config(directory: Path, config: dict[str, object]) -> Path:
    path = directory / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture
def helper_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory put first on PATH, where tests install docker-credential-* programs."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")
    return directory


def answer(server: str, username: str, secret: str) -> dict[str, str]:
    """What a helper prints for `get`."""
    return {"ServerURL": server, "Username": username, "Secret": secret}


def install_helper(
    directory: Path,
    name: str,
    answers: dict[str, tuple[str, str]],
    *,
    fail_with: str | None = None,
) -> Path:
    """Write docker-credential-NAME: a shell script answering `get` as real helpers do.

    It logs each server it is asked about to NAME.log, answers JSON for the servers in
    `answers`, and otherwise exits 1 with the "not found" text of docker-credential-helpers.
    """
    log = directory / f"{name}.log"
    cases = "".join(
        f"  '{server}') printf '%s' '{json.dumps(answer(server, user, secret))}' ;;\n"
        for server, (user, secret) in answers.items()
    )
    failure = f"echo '{fail_with}'; exit 2\n" if fail_with else ""
    script = directory / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 3\n'
        "read -r server || true\n"
        f"printf '%s\\n' \"$server\" >> '{log}'\n"
        f"{failure}"
        'case "$server" in\n'
        f"{cases}"
        "  *) echo 'credentials not found in native keychain'; exit 1 ;;\n"
        "esac\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


class TestCredentials:
    """The password never shows when credentials are printed."""

    def test_repr_hides_password(self) -> None:
        credentials = Credentials("alice", "s3cret-value")
        assert "s3cret-value" not in repr(credentials)
        assert "s3cret-value" not in str(credentials)
        assert "alice" in repr(credentials)


class TestFindCredentials:
    """Config credentials first, then Docker's auths, credsStore and credHelpers."""

    def test_config_credentials_win(self, tmp_path: Path) -> None:
        path = write_config(tmp_path, {"auths": {REGISTRY: {"auth": b64("docker:pw")}}})
        found = find_credentials(REGISTRY, "config-user", "config-pw", str(path))
        assert found == Credentials("config-user", "config-pw")

    def test_auths_entry_with_base64_auth(self, tmp_path: Path) -> None:
        path = write_config(tmp_path, {"auths": {REGISTRY: {"auth": b64("bob:p:w")}}})
        assert find_credentials(REGISTRY, None, None, str(path)) == Credentials("bob", "p:w")

    def test_auths_key_written_as_url(self, tmp_path: Path) -> None:
        path = write_config(
            tmp_path, {"auths": {f"https://{REGISTRY}/v2/": {"auth": b64("bob:pw")}}}
        )
        assert find_credentials(REGISTRY, None, None, str(path)) == Credentials("bob", "pw")

    def test_auths_entry_with_username_and_password(self, tmp_path: Path) -> None:
        path = write_config(
            tmp_path, {"auths": {REGISTRY: {"username": "carol", "password": "pw"}}}
        )
        assert find_credentials(REGISTRY, None, None, str(path)) == Credentials("carol", "pw")

    def test_other_registry_has_nothing(self, tmp_path: Path) -> None:
        path = write_config(tmp_path, {"auths": {"other.example:5000": {"auth": b64("x:y")}}})
        assert find_credentials(REGISTRY, None, None, str(path)) is None

    def test_empty_entry_left_by_a_credential_store(self, tmp_path: Path) -> None:
        path = write_config(tmp_path, {"auths": {REGISTRY: {}}})
        assert find_credentials(REGISTRY, None, None, str(path)) is None

    @pytest.mark.parametrize("hub_name", [None, "", "docker.io", "index.docker.io"])
    def test_docker_hub_key(self, tmp_path: Path, hub_name: str | None) -> None:
        path = write_config(tmp_path, {"auths": {DOCKER_HUB_KEY: {"auth": b64("hubuser:pw")}}})
        assert find_credentials(hub_name, None, None, str(path)) == Credentials("hubuser", "pw")

    def test_docker_config_environment_variable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write_config(tmp_path, {"auths": {REGISTRY: {"auth": b64("env:pw")}}})
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
        assert find_credentials(REGISTRY, None, None) == Credentials("env", "pw")

    def test_home_config(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / ".docker").mkdir()
        write_config(tmp_path / ".docker", {"auths": {REGISTRY: {"auth": b64("home:pw")}}})
        monkeypatch.delenv("DOCKER_CONFIG", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path))
        assert find_credentials(REGISTRY, None, None) == Credentials("home", "pw")

    def test_no_config_at_all(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("DOCKER_CONFIG", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path))
        assert find_credentials(REGISTRY, None, None) is None

    def test_username_alone_must_match_docker_config(self, tmp_path: Path) -> None:
        path = write_config(tmp_path, {"auths": {REGISTRY: {"auth": b64("bob:pw")}}})
        assert find_credentials(REGISTRY, "bob", None, str(path)) == Credentials("bob", "pw")
        assert find_credentials(REGISTRY, "alice", None, str(path)) is None

    def test_named_config_must_exist(self, tmp_path: Path) -> None:
        missing = str(tmp_path / "nope.json")
        with pytest.raises(DockerPkgError) as raised:
            find_credentials(REGISTRY, None, None, missing)
        assert raised.value.problems[0].location.path == missing

    def test_invalid_json_is_located(self, tmp_path: Path) -> None:
        path = tmp_path / "config.json"
        path.write_text('{\n  "auths": {\n    oops\n}', encoding="utf-8")
        with pytest.raises(DockerPkgError) as raised:
            find_credentials(REGISTRY, None, None, str(path))
        problem = raised.value.problems[0]
        assert (problem.location.path, problem.location.line) == (str(path), 3)
        assert "not valid JSON" in problem.message

    def test_broken_auth_field(self, tmp_path: Path) -> None:
        path = write_config(tmp_path, {"auths": {REGISTRY: {"auth": "not base64!"}}})
        with pytest.raises(DockerPkgError, match="not base64 of user:password"):
            find_credentials(REGISTRY, None, None, str(path))


class TestCredentialHelpers:
    """credsStore and credHelpers run `docker-credential-NAME get` with the server on stdin."""

    def test_creds_store(self, tmp_path: Path, helper_dir: Path) -> None:
        log = install_helper(helper_dir, "test", {REGISTRY: ("helper-user", "helper-pw")})
        path = write_config(tmp_path, {"credsStore": "test"})
        found = find_credentials(REGISTRY, None, None, str(path))
        assert found == Credentials("helper-user", "helper-pw")
        assert log.read_text(encoding="utf-8") == f"{REGISTRY}\n"

    def test_helper_is_asked_about_docker_hub_by_its_url(
        self, tmp_path: Path, helper_dir: Path
    ) -> None:
        log = install_helper(helper_dir, "test", {DOCKER_HUB_KEY: ("hub", "pw")})
        path = write_config(tmp_path, {"credsStore": "test"})
        assert find_credentials(None, None, None, str(path)) == Credentials("hub", "pw")
        assert log.read_text(encoding="utf-8") == f"{DOCKER_HUB_KEY}\n"

    def test_helper_wins_over_auths(self, tmp_path: Path, helper_dir: Path) -> None:
        install_helper(helper_dir, "test", {REGISTRY: ("helper-user", "helper-pw")})
        path = write_config(
            tmp_path,
            {"credsStore": "test", "auths": {REGISTRY: {"auth": b64("file-user:pw")}}},
        )
        assert find_credentials(REGISTRY, None, None, str(path)) == Credentials(
            "helper-user", "helper-pw"
        )

    def test_auths_used_when_helper_has_nothing(self, tmp_path: Path, helper_dir: Path) -> None:
        install_helper(helper_dir, "test", {})
        path = write_config(
            tmp_path,
            {"credsStore": "test", "auths": {REGISTRY: {"auth": b64("file-user:pw")}}},
        )
        assert find_credentials(REGISTRY, None, None, str(path)) == Credentials("file-user", "pw")

    def test_cred_helpers_per_registry(self, tmp_path: Path, helper_dir: Path) -> None:
        install_helper(helper_dir, "test", {REGISTRY: ("per-registry", "pw")})
        install_helper(helper_dir, "store", {REGISTRY: ("store", "pw")})
        path = write_config(tmp_path, {"credsStore": "store", "credHelpers": {REGISTRY: "test"}})
        assert find_credentials(REGISTRY, None, None, str(path)) == Credentials(
            "per-registry", "pw"
        )
        assert find_credentials("elsewhere:443", None, None, str(path)) is None

    def test_identity_tokens_are_not_passwords(self, tmp_path: Path, helper_dir: Path) -> None:
        install_helper(helper_dir, "test", {REGISTRY: ("<token>", "refresh-token")})
        path = write_config(tmp_path, {"credsStore": "test"})
        assert find_credentials(REGISTRY, None, None, str(path)) is None

    def test_missing_helper_is_an_error(self, tmp_path: Path, helper_dir: Path) -> None:
        path = write_config(tmp_path, {"credsStore": "absent-helper-xyz"})
        with pytest.raises(DockerPkgError) as raised:
            find_credentials(REGISTRY, None, None, str(path))
        problem = raised.value.problems[0]
        assert problem.location.path == str(path)
        assert "docker-credential-absent-helper-xyz" in problem.message
        assert "not found on PATH" in problem.message

    def test_failing_helper_is_an_error(self, tmp_path: Path, helper_dir: Path) -> None:
        install_helper(helper_dir, "test", {}, fail_with="keyring is locked")
        path = write_config(tmp_path, {"credsStore": "test"})
        with pytest.raises(DockerPkgError, match="keyring is locked") as raised:
            find_credentials(REGISTRY, None, None, str(path))
        assert "exit status 2" in raised.value.problems[0].message
