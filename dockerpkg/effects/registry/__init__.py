"""A client of a Docker registry's HTTP API v2, split by job: `client` (the questions),
`pipelined` (many checks at once), `writes` (tags copied, images promoted, manifests
deleted), `session` (one authenticated request), `auth` (scheme, challenge, tokens),
`transport` (session, proxies, retries), `errors` (failures, worded for the user)."""

from dockerpkg.effects.registry.client import (
    DOCKER_HUB_API_HOST,
    MANIFEST_MEDIA_TYPES,
    RegistryClient,
)
from dockerpkg.effects.registry.errors import (
    RegistryCancelledError,
    RegistryError,
    RegistryFailure,
)
from dockerpkg.effects.registry.transport import Interrupter, RetryPolicy

__all__ = [
    "DOCKER_HUB_API_HOST",
    "MANIFEST_MEDIA_TYPES",
    "Interrupter",
    "RegistryCancelledError",
    "RegistryClient",
    "RegistryError",
    "RegistryFailure",
    "RetryPolicy",
]
