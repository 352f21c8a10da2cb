"""The run's environment as one value: read once at the edge, passed down, never read again.

`cli/main.py` (or a library caller) reads the process's environment once; `run_environment`
wraps that mapping into a `RunEnvironment`, which names every variable the run itself uses.
It is still the whole mapping: child processes (git, credential helpers, verifications) inherit
it and `env:` secret sources name variables of it. Nothing under effects/ reads `os.environ`
(checked by tests/unit/test_architecture.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import attrs

# The variables the run reads, by what they are for.
DOCKER_HOST = "DOCKER_HOST"  # the Docker host to build on when no builders are given
DOCKER_TLS_VERIFY = "DOCKER_TLS_VERIFY"  # that host speaks TLS, checked with DOCKER_CERT_PATH
DOCKER_CERT_PATH = "DOCKER_CERT_PATH"
DOCKER_BUILDKIT = "DOCKER_BUILDKIT"  # the build engine, as the docker CLI reads it
DOCKER_CONFIG = "DOCKER_CONFIG"  # the Docker client's folder (its login)
HOME = "HOME"
XDG_CONFIG_HOME = "XDG_CONFIG_HOME"  # where the user's docker-pkg.yaml is
USERNAME = "DOCKERPKG_USERNAME"  # the registry login, over the config's
PASSWORD = "DOCKERPKG_PASSWORD"  # noqa: S105 (a variable name, not a secret)
SSH_AUTH_SOCK = "SSH_AUTH_SOCK"  # the agent `--ssh default` forwards
DEBFULLNAME = "DEBFULLNAME"  # who signs changelog entries
DEBEMAIL = "DEBEMAIL"
CA_BUNDLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")  # the CAs registries are checked with


def _copy(variables: Mapping[str, str]) -> Mapping[str, str]:
    return dict(variables)


# Unhashable, as the mapping it is (eq without a hash).
@attrs.frozen(hash=False)
class RunEnvironment(Mapping[str, str]):
    """The run's environment VARIABLES (a copy, never shown: it may hold secrets), with the
    ones the run uses named. A variable set to "" counts as unset."""

    variables: Mapping[str, str] = attrs.field(factory=dict, converter=_copy, repr=False)

    def __getitem__(self, key: str) -> str:
        return self.variables[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables)

    def __len__(self) -> int:
        return len(self.variables)

    def named(self, name: str) -> str | None:
        """The variable NAME; None when unset or empty."""
        return self.variables.get(name) or None

    @property
    def docker_host(self) -> str | None:
        return self.named(DOCKER_HOST)

    @property
    def docker_tls_verify(self) -> bool:
        return self.named(DOCKER_TLS_VERIFY) is not None

    @property
    def docker_cert_path(self) -> str | None:
        return self.named(DOCKER_CERT_PATH)

    @property
    def docker_buildkit(self) -> str | None:
        return self.named(DOCKER_BUILDKIT)

    @property
    def docker_config(self) -> str | None:
        return self.named(DOCKER_CONFIG)

    @property
    def home(self) -> str | None:
        return self.named(HOME)

    @property
    def xdg_config_home(self) -> str | None:
        return self.named(XDG_CONFIG_HOME)

    @property
    def username(self) -> str | None:
        return self.named(USERNAME)

    @property
    def password(self) -> str | None:
        return self.named(PASSWORD)

    @property
    def ssh_auth_sock(self) -> str | None:
        return self.named(SSH_AUTH_SOCK)

    @property
    def author_name(self) -> str | None:
        return self.named(DEBFULLNAME)

    @property
    def author_email(self) -> str | None:
        return self.named(DEBEMAIL)

    @property
    def ca_bundle(self) -> str | None:
        """The CA file the environment names for registries, first set of CA_BUNDLES."""
        return next((found for name in CA_BUNDLES if (found := self.named(name))), None)


def run_environment(env: Mapping[str, str]) -> RunEnvironment:
    """ENV as a RunEnvironment (itself when it is one already: no copy on the way down)."""
    return env if isinstance(env, RunEnvironment) else RunEnvironment(env)
