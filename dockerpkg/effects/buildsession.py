"""Which BuildKit session one build gets: what of its secrets, SSH agents and registry logins
it needs, read or reached when it starts and let go when it ends (dockerpkg.effects.session
serves them)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

import attrs

from dockerpkg.core.builders import TLSFiles
from dockerpkg.core.plan import BuildEngine, PlannedImage, PlannedSecret
from dockerpkg.core.runenv import run_environment
from dockerpkg.effects import daemon
from dockerpkg.effects.tasks import TaskFailedError
from dockerpkg.effects.waits import Patience


@attrs.frozen
class Sources:
    """Where a run's session material comes from, as the plan and the login give it."""

    secrets: Mapping[str, PlannedSecret]  # secret id -> its source
    ssh: Mapping[str, PlannedSecret]  # agent id -> its socket, key file or the run's agent
    logins: Mapping[str, tuple[str, str]] = attrs.field(repr=False)  # registry -> user, password


@contextlib.contextmanager
def image_session(
    image: PlannedImage,
    engine: BuildEngine,
    sources: Sources,
    env: Mapping[str, str],
    builder: tuple[Mapping[str, str], TLSFiles | None],
    *,
    patience: Patience | None = None,
) -> Iterator[str | None]:
    """The id of the session serving IMAGE's secrets (their values read now), its SSH agents
    and the registry logins its cache imports need, for its build only; None when it needs
    none of them. ENV: the run's environment; BUILDER: that environment with the builder's
    DOCKER_HOST, and the builder's TLS files (None: DOCKER_CERT_PATH's, if TLS). PATIENCE
    (the build's cancellation and deadline) ends every wait for them."""
    if not image.secrets and not image.ssh and not image.cache_from:
        yield None
        return
    if engine is not BuildEngine.BUILDKIT:
        if image.secrets or image.ssh:
            raise TaskFailedError(
                f"{image.name} mounts build secrets or SSH agents, which need BuildKit"
            )
        yield None
        return
    # Only builds that need a session load grpcio.
    from dockerpkg.effects.secretvalues import SecretReadError
    from dockerpkg.effects.session import build_session, read_secrets
    from dockerpkg.effects.sshagents import AgentError, agent_sockets

    try:
        values = read_secrets(image.secrets, sources.secrets, env)
    except SecretReadError as exc:
        raise TaskFailedError(str(exc)) from None
    builder_env, tls = builder
    named = run_environment(builder_env)
    host = named.docker_host or daemon.DEFAULT_HOST
    if tls is None and named.docker_tls_verify:
        # As the docker CLI takes DOCKER_CERT_PATH (default ~/.docker).
        folder = named.docker_cert_path or "~/.docker"
        tls = TLSFiles(*(os.path.join(folder, f"{n}.pem") for n in ("ca", "cert", "key")))
    with contextlib.ExitStack() as stack:
        try:
            agents = stack.enter_context(agent_sockets(image.ssh, sources.ssh, env, patience))
        except AgentError as exc:
            raise TaskFailedError(str(exc)) from None
        yield stack.enter_context(
            build_session(host, tls, values, sources.logins, agents, patience=patience, env=env)
        )
