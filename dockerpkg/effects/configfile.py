"""Find and read config files: the user file under the -c file, as docker-pkg does."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

import attrs

from dockerpkg.core.config import Config, load_config, parse_config_data, proxy_password_warnings
from dockerpkg.effects.homes import user_config_folder
from dockerpkg.errors import DockerPkgError, Problem, warning

DEFAULT_CONFIG = "config.yaml"


@attrs.frozen
class LoadedConfig:
    """The merged config, the (path, text) pairs it came from, and warnings about them."""

    config: Config
    files: tuple[tuple[str, str], ...]
    warnings: tuple[Problem, ...] = ()


def user_config_path(env: Mapping[str, str]) -> Path:
    return Path(user_config_folder(env)) / "docker-pkg.yaml"


def read_config(path: str | None, env: Mapping[str, str]) -> LoadedConfig:
    """Read the user file (if any) then PATH; an explicitly named missing file is an error."""
    files: list[tuple[str, str]] = []
    notes: list[Problem] = []
    user = user_config_path(env)
    if user.is_file():
        files.append((str(user), _read(str(user))))
    chosen = path or DEFAULT_CONFIG
    if Path(chosen).is_dir():
        raise DockerPkgError.single(chosen, "is a folder, not a config file")
    if Path(chosen).is_file():
        files.append((chosen, _read(chosen)))
    elif path is not None:
        raise DockerPkgError.single(chosen, "config file not found")
    else:
        notes.append(warning(chosen, "no config file here; using the defaults (-c FILE names one)"))
    config = load_config(files)
    notes += [note for name, text in files if (note := _exposed_password(name, text))]
    notes += proxy_password_warnings(config, files)
    return LoadedConfig(config, tuple(files), tuple(notes))


def _exposed_password(path: str, text: str) -> Problem | None:
    """A warning when PATH holds a password that other users can read (a warning only:
    the user may have reasons, and refusing would break working setups)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    # Parsed again only for loose files: load_config has already accepted the text.
    if not parse_config_data(text, path).get("password"):
        return None
    readers = "every user" if mode & stat.S_IROTH else "its group"
    return warning(
        path,
        f"holds a password and is readable by {readers} (mode {stat.S_IMODE(mode):04o}); "
        f"run: chmod 600 {path}",
    )


def _read(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DockerPkgError.single(path, f"cannot read config file: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise DockerPkgError.single(path, f"not UTF-8 text (byte 0x{byte})", line) from None
