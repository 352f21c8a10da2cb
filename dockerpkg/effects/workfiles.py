"""The files dockerpkg itself writes into an image tree while an update runs.

Nothing reads them as part of the tree: the snapshot, definitions and build contexts leave
them out wherever they are, so what an interrupted update left behind can never change an
image or be sent to a daemon.
"""

from __future__ import annotations

# A changelog's new text, beside it, until it replaces it.
TEMP_NAME = ".changelog.dockerpkg-tmp"
# What an update is writing, in the tree's folder, until it is done (see changelogs).
JOURNAL_NAME = ".dockerpkg-update.journal"
# The journal while it is written, before it is linked into place whole.
JOURNAL_TEMP = ".dockerpkg-update.journal-tmp"
# What `refs --apply` is writing (the files using the tree's images), until it is done.
REFS_JOURNAL = ".dockerpkg-refs.journal"
REFS_JOURNAL_TEMP = ".dockerpkg-refs.journal-tmp"
WORKING_FILES = frozenset({TEMP_NAME, JOURNAL_NAME, JOURNAL_TEMP, REFS_JOURNAL, REFS_JOURNAL_TEMP})
