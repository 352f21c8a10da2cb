"""The folder the docker CLI reads a TLS builder's files from (DOCKER_CERT_PATH: ca.pem,
cert.pem and key.pem, by those names), for the verifications run on a builder whose files
are named or placed otherwise: links to them in a private folder, for the run."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Mapping

from dockerpkg.core.builders import TLSFiles
from dockerpkg.effects import scratch
from dockerpkg.effects.homes import expand_user


@contextlib.contextmanager
def cert_folder(tls: TLSFiles, env: Mapping[str, str]) -> Iterator[str]:
    """A folder holding TLS's files as ca.pem, cert.pem and key.pem: theirs when they are
    already so, else one made for the block. ENV: the run's environment (its HOME for `~`)."""
    wanted = {"ca.pem": tls.ca, "cert.pem": tls.cert, "key.pem": tls.key}
    files = {name: os.path.abspath(expand_user(path, env)) for name, path in wanted.items()}
    folders = {os.path.dirname(path) for path in files.values()}
    if len(folders) == 1 and all(os.path.basename(p) == n for n, p in files.items()):
        yield folders.pop()
        return
    folder = scratch.make_folder("certs")
    try:
        os.chmod(folder, 0o700)
        for name, path in files.items():
            os.symlink(path, os.path.join(folder, name))
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
