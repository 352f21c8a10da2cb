"""The choice of a registry login, from literal facts: no file read, no helper run."""

from __future__ import annotations

import base64
import json

import pytest

from dockerpkg.core.config import Config
from dockerpkg.core.logins import (
    DOCKER_HUB_KEY,
    Credentials,
    DockerConfig,
    HelperAnswer,
    LoginSettings,
    choose_credentials,
    helper_for,
    login_for,
    login_settings,
    read_docker_config,
    server_address,
)
from dockerpkg.errors import DockerPkgError

REGISTRY = "registry.example.org"
PATH = "/home/u/.docker/config.json"


def docker(content: dict[str, object]) -> DockerConfig:
    return DockerConfig(PATH, content)


def auth(username: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}


def said(username: str, secret: str) -> HelperAnswer:
    answer = {"ServerURL": REGISTRY, "Username": username, "Secret": secret}
    return HelperAnswer("docker-credential-x", REGISTRY, 0, json.dumps(answer).encode())


class TestLoginSettings:
    """The environment's variables replace the config's keys, one by one."""

    def test_environment_over_config(self) -> None:
        env = {"DOCKERPKG_USERNAME": "env-user", "DOCKERPKG_PASSWORD": "env-pw"}
        found = login_settings(Config(registry=REGISTRY, username="u", password="p"), env)
        assert found == LoginSettings(REGISTRY, "env-user", "env-pw")
        assert found.complete

    def test_config_password_only_with_config_username(self) -> None:
        config = Config(registry=REGISTRY, username="file-user", password="file-pw")
        assert login_settings(config, {"DOCKERPKG_USERNAME": "other"}) == LoginSettings(
            REGISTRY, "other", None
        )
        assert login_settings(config, {"DOCKERPKG_USERNAME": "file-user"}).complete

    def test_password_without_username_is_an_error(self) -> None:
        with pytest.raises(DockerPkgError) as caught:
            login_settings(Config(registry=REGISTRY), {"DOCKERPKG_PASSWORD": "hunter2"})
        assert caught.value.problems[0].location.path == "DOCKERPKG_PASSWORD"
        assert "hunter2" not in str(caught.value)

    def test_password_never_in_repr(self) -> None:
        assert "hunter2" not in repr(LoginSettings(REGISTRY, "u", "hunter2"))
        assert "hunter2" not in repr(Credentials("u", "hunter2"))


class TestChoice:
    """The run's whole login, else the helper's answer, else the inline auths."""

    def test_whole_login_needs_no_docker_config(self) -> None:
        settings = LoginSettings(REGISTRY, "u", "p")
        assert choose_credentials(settings) == Credentials("u", "p")

    def test_no_docker_config_no_login(self) -> None:
        assert choose_credentials(LoginSettings(REGISTRY, "u")) is None

    def test_helper_before_auths(self) -> None:
        config = docker({"auths": {REGISTRY: auth("inline", "pw")}, "credsStore": "x"})
        found = choose_credentials(LoginSettings(REGISTRY), config, said("helped", "s"))
        assert found == Credentials("helped", "s")

    def test_helper_with_nothing_falls_back_to_auths(self) -> None:
        config = docker({"auths": {REGISTRY: auth("inline", "pw")}, "credsStore": "x"})
        nothing = HelperAnswer(
            "docker-credential-x", REGISTRY, 1, b"credentials not found in native keychain\n"
        )
        assert choose_credentials(LoginSettings(REGISTRY), config, nothing) == Credentials(
            "inline", "pw"
        )
        empty = said("", "")
        assert choose_credentials(LoginSettings(REGISTRY), config, empty) == Credentials(
            "inline", "pw"
        )

    def test_identity_token_is_no_login(self) -> None:
        assert choose_credentials(LoginSettings(REGISTRY), docker({}), said("<token>", "t")) is None

    def test_another_users_login_is_not_used(self) -> None:
        config = docker({"auths": {REGISTRY: auth("bob", "pw")}})
        assert choose_credentials(LoginSettings(REGISTRY, "alice"), config) is None
        assert choose_credentials(LoginSettings(REGISTRY, "bob"), config) == Credentials(
            "bob", "pw"
        )

    def test_exact_key_first_then_same_host(self) -> None:
        config = docker(
            {"auths": {f"https://{REGISTRY}/v1/": auth("url", "pw"), REGISTRY: auth("exact", "pw")}}
        )
        assert choose_credentials(LoginSettings(REGISTRY), config) == Credentials("exact", "pw")
        assert choose_credentials(LoginSettings("elsewhere:443"), config) is None

    def test_docker_hub_spellings(self) -> None:
        config = docker({"auths": {DOCKER_HUB_KEY: auth("hub", "pw")}})
        for name in (None, "", "docker.io", "index.docker.io"):
            assert server_address(name) == DOCKER_HUB_KEY
            assert choose_credentials(LoginSettings(name), config) == Credentials("hub", "pw")

    def test_failed_helper_quotes_one_short_line(self) -> None:
        failed = HelperAnswer("docker-credential-x", REGISTRY, 3, b"locked\nsecret-on-line-2\n")
        with pytest.raises(DockerPkgError) as caught:
            choose_credentials(LoginSettings(REGISTRY), docker({}), failed)
        problem = caught.value.problems[0]
        assert problem.location.path == PATH
        assert "exit status 3): locked" in problem.message
        assert "secret-on-line-2" not in problem.message

    def test_unreadable_helper_answer(self) -> None:
        garbled = HelperAnswer(
            "docker-credential-x", REGISTRY, 0, b'{"Username": 1, "Secret": "s3"}'
        )
        with pytest.raises(DockerPkgError) as caught:
            choose_credentials(LoginSettings(REGISTRY), docker({}), garbled)
        assert "unreadable answer" in str(caught.value)
        assert "s3" not in str(caught.value)
        assert "s3" not in repr(garbled)

    @pytest.mark.parametrize(
        ("content", "words"),
        [
            ({"auths": ["x"]}, "'auths' in Docker config is not an object"),
            ({"auths": {REGISTRY: "x"}}, "is not an object"),
            ({"auths": {REGISTRY: {"auth": "bm9jb2xvbg=="}}}, "not base64 of user:password"),
        ],
    )
    def test_bad_auths_are_located_errors(self, content: dict[str, object], words: str) -> None:
        with pytest.raises(DockerPkgError) as caught:
            choose_credentials(LoginSettings(REGISTRY), docker(content))
        assert caught.value.problems[0].location.path == PATH
        assert words in caught.value.problems[0].message


class TestDockerConfig:
    """Reading the file's text and naming its helper."""

    def test_invalid_json_names_the_line(self) -> None:
        with pytest.raises(DockerPkgError) as caught:
            read_docker_config(PATH, '{\n  "auths": ,\n}')
        assert caught.value.problems[0].location.line == 2

    def test_not_an_object(self) -> None:
        with pytest.raises(DockerPkgError, match="not a JSON object"):
            read_docker_config(PATH, "[]")

    def test_per_registry_helper_over_store(self) -> None:
        config = read_docker_config(
            PATH, json.dumps({"credsStore": "all", "credHelpers": {REGISTRY: "mine"}})
        )
        assert helper_for(config, REGISTRY) == "mine"
        assert helper_for(config, "other.example.org") == "all"
        assert helper_for(docker({}), REGISTRY) is None

    def test_cred_helpers_must_be_an_object(self) -> None:
        with pytest.raises(DockerPkgError, match="'credHelpers'"):
            helper_for(docker({"credHelpers": ["x"]}), REGISTRY)


class TestLoginFor:
    """Which pulls and pushes get the run's login: those of the config's registry only."""

    RUN = Credentials("ci", "s3cret")

    @pytest.mark.parametrize(
        ("label", "registry", "given"),
        [
            (f"{REGISTRY}/team/app:1.0", REGISTRY, True),
            (f"{REGISTRY}/team/app", f"{REGISTRY}/", True),
            (f"{REGISTRY}:5000/team/app:1.0", REGISTRY, False),
            ("other.example.org/debian:bookworm", REGISTRY, False),
            ("debian:bookworm", REGISTRY, False),
            ("debian:bookworm", None, True),  # no registry: Docker Hub's login
            ("docker.io/library/debian:bookworm", "", True),
            (f"{REGISTRY}/team/app:1.0", None, False),
        ],
    )
    def test_only_the_configs_registry_gets_it(
        self, label: str, registry: str | None, given: bool
    ) -> None:
        assert login_for(label, registry, self.RUN) == (self.RUN if given else None)

    def test_without_a_run_login_none_is_given(self) -> None:
        assert login_for(f"{REGISTRY}/team/app:1.0", REGISTRY, None) is None
