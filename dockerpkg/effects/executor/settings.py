"""How one executor runs: fixed before the run, never changed by it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import IO

import attrs

from dockerpkg.core.builders import TLSFiles
from dockerpkg.core.config import Config
from dockerpkg.core.plan import BuildEngine, PlannedSecret
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.daemon import TRANSFER_TIMEOUT
from dockerpkg.effects.executor.registrystop import RegistryStop
from dockerpkg.effects.links import LinkPolicy
from dockerpkg.effects.logs import DEFAULT_LOG_LIMIT
from dockerpkg.effects.registry.gate import RegistryGates


@attrs.frozen
class Settings:
    """Where and how to run: fixed before the run, never changed by it."""

    directory: Path  # the image tree
    run_dir: Path  # per-image logs go here
    config: Config
    credentials: Credentials | None
    jobs: int = 1
    echo: IO[str] | None = None  # --info: build output to the terminal as well
    push_jobs: int = 4
    pull_jobs: int = 4
    # Where links in image folders may lead (None: inside the tree's repository only); its
    # private paths (config files holding secrets) are never copied into a build context.
    links: LinkPolicy | None = None
    build_timeout: float | None = None  # seconds one image's build may take
    verify_timeout: float | None = None  # seconds one image's verification may take
    # Seconds a pull or a push may wait for a word from the daemon.
    transfer_timeout: float = TRANSFER_TIMEOUT
    build_engine: BuildEngine = BuildEngine.BUILDKIT
    log_limit: int = DEFAULT_LOG_LIMIT  # characters each step may write to its image's log
    # For verifications: DOCKER_HOST (and TLS variables) of the builder, over the environment's.
    daemon_env: Mapping[str, str] = attrs.field(factory=dict)
    builder_tls: TLSFiles | None = None  # the builder's TLS files, for its BuildKit sessions
    # The run's environment, read once by the caller: what a verification inherits of it.
    env: Mapping[str, str] = attrs.field(factory=dict)
    # all_or_nothing: label -> its staging reference, for the images the run stages or
    # promotes (a builder needing one pulls it from there: nothing is at the label yet).
    staged: Mapping[str, str] = attrs.field(factory=dict)
    # Label -> the build identity the plan gives the image (what a staged one must record).
    identities: Mapping[str, str] = attrs.field(factory=dict)
    # Build secret id -> its source (the plan's).
    secrets: Mapping[str, PlannedSecret] = attrs.field(factory=dict)
    # SSH agent id -> its socket, key file or the run's agent (the plan's).
    ssh: Mapping[str, PlannedSecret] = attrs.field(factory=dict)
    # The labels whose failed pull goes on with the daemon's own copy: the plan's pull steps
    # that say so (core.stepchoices.local_copies).
    local_copies: frozenset[str] = frozenset()
    # The run's registry gates (one per host, shared by every builder's executor and the
    # registry client): daemon pulls and pushes wait at them too.
    gates: RegistryGates = attrs.field(factory=RegistryGates, eq=False, repr=False)
    # Ends the registry client's waits when the run is cancelled (shared like the gates).
    registry_stop: RegistryStop = attrs.field(factory=RegistryStop, eq=False, repr=False)
