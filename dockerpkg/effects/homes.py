"""The folders the run's environment names: the user's home, Docker's client folder, the
user's config folder. Read from the environment passed in; only an unset HOME sends us to
the password database, as the docker CLI and Python's `Path.home` do."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping

from dockerpkg.core.runenv import run_environment


def home_folder(env: Mapping[str, str]) -> str:
    """HOME, else the user's home in the password database."""
    return run_environment(env).home or pwd.getpwuid(os.getuid()).pw_dir


def docker_config_folder(env: Mapping[str, str]) -> str:
    """The Docker client's folder (it may hold credentials): DOCKER_CONFIG, else ``.docker``
    in the home."""
    return run_environment(env).docker_config or os.path.join(home_folder(env), ".docker")


def user_config_folder(env: Mapping[str, str]) -> str:
    """Where the user's own config files are: XDG_CONFIG_HOME, else ``.config`` in the home."""
    return run_environment(env).xdg_config_home or os.path.join(home_folder(env), ".config")


def expand_user(path: str, env: Mapping[str, str]) -> str:
    """PATH with a leading ``~`` made the home ENV names (``~USER``: that user's home in the
    password database), as a shell does; any other path as it is."""
    if path == "~" or path.startswith("~/"):
        return home_folder(env) + path[1:]
    if path.startswith("~"):
        user, slash, rest = path[1:].partition("/")
        try:  # ~USER: that user's home in the password database, not the environment
            home = pwd.getpwnam(user).pw_dir
        except KeyError:
            return path  # no such user: the path as it is, as a shell leaves it
        return (home.rstrip("/") + slash + rest) or "/"
    return path
