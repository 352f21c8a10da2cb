"""The run's environment as one value, and the folders it names: literal environments only."""

from __future__ import annotations

import os

from dockerpkg.core.runenv import RunEnvironment, run_environment
from dockerpkg.effects.homes import (
    docker_config_folder,
    expand_user,
    home_folder,
    user_config_folder,
)


class TestRunEnvironment:
    """Named variables over the whole mapping, which is passed on unchanged."""

    def test_named_variables(self) -> None:
        env = RunEnvironment(
            {
                "DOCKER_HOST": "tcp://h:2376",
                "DOCKER_TLS_VERIFY": "1",
                "DOCKER_BUILDKIT": "0",
                "DOCKERPKG_USERNAME": "u",
                "SSH_AUTH_SOCK": "/run/agent",
                "DEBFULLNAME": "Jane",
            }
        )
        assert env.docker_host == "tcp://h:2376"
        assert env.docker_tls_verify is True
        assert env.docker_buildkit == "0"
        assert env.username == "u"
        assert env.password is None
        assert env.ssh_auth_sock == "/run/agent"
        assert env.author_name == "Jane"
        assert env.author_email is None

    def test_empty_counts_as_unset(self) -> None:
        env = RunEnvironment({"DOCKER_HOST": "", "DOCKER_TLS_VERIFY": ""})
        assert env.docker_host is None
        assert env.docker_tls_verify is False
        assert env["DOCKER_HOST"] == ""  # the mapping itself is as given

    def test_ca_bundle_first_set(self) -> None:
        assert RunEnvironment({"SSL_CERT_FILE": "/b"}).ca_bundle == "/b"
        both = {"REQUESTS_CA_BUNDLE": "/a", "SSL_CERT_FILE": "/b"}
        assert RunEnvironment(both).ca_bundle == "/a"
        assert RunEnvironment({"REQUESTS_CA_BUNDLE": "", "SSL_CERT_FILE": "/b"}).ca_bundle == "/b"
        assert RunEnvironment().ca_bundle is None

    def test_a_mapping_copied_once_and_never_shown(self) -> None:
        given = {"PATH": "/bin", "DOCKERPKG_PASSWORD": "hunter2"}
        env = run_environment(given)
        given["PATH"] = "/changed"
        assert dict(env) == {"PATH": "/bin", "DOCKERPKG_PASSWORD": "hunter2"}
        assert len(env) == 2
        assert run_environment(env) is env
        assert "hunter2" not in repr(env)
        assert env == RunEnvironment({"PATH": "/bin", "DOCKERPKG_PASSWORD": "hunter2"})


class TestHomes:
    """The folders the environment names, never the process's own environment."""

    def test_docker_config_folder(self) -> None:
        assert docker_config_folder({"DOCKER_CONFIG": "/d", "HOME": "/h"}) == "/d"
        assert docker_config_folder({"HOME": "/h"}) == os.path.join("/h", ".docker")

    def test_user_config_folder(self) -> None:
        assert user_config_folder({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == "/x"
        assert user_config_folder({"HOME": "/h"}) == os.path.join("/h", ".config")

    def test_home_without_home_is_the_password_databases(self) -> None:
        import pwd

        assert home_folder({"HOME": "/h"}) == "/h"
        assert home_folder({}) == pwd.getpwuid(os.getuid()).pw_dir

    def test_expand_user_with_the_given_home(self) -> None:
        env = {"HOME": "/h"}
        assert expand_user("~", env) == "/h"
        assert expand_user("~/shared", env) == "/h/shared"
        assert expand_user("shared/~x", env) == "shared/~x"
        assert expand_user("/abs", env) == "/abs"

    def test_expand_user_of_another_user_reads_the_password_database(self) -> None:
        import pwd

        me = pwd.getpwuid(os.getuid())
        # HOME does not count for ~USER, as in a shell.
        assert expand_user(f"~{me.pw_name}/x", {"HOME": "/h"}) == me.pw_dir.rstrip("/") + "/x"
        assert expand_user("~no-such-user-here/x", {"HOME": "/h"}) == "~no-such-user-here/x"
