# PYTHON_ARGCOMPLETE_OK: the entry point's module says it completes (argcomplete's global mode)
"""The command line (`dockerpkg`): each command parses, calls one library function of
dockerpkg.api, and prints."""

from dockerpkg.cli.main import main

__all__ = ["main"]
