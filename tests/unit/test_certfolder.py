"""The docker CLI's folder of TLS files (DOCKER_CERT_PATH) for a builder's files."""

from __future__ import annotations

import os
from pathlib import Path

from dockerpkg.core.builders import TLSFiles
from dockerpkg.effects.certfolder import cert_folder


def test_files_named_otherwise_get_a_folder_of_links_for_the_block(tmp_path: Path) -> None:
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / name).write_text(name, encoding="utf-8")
    tls = TLSFiles(
        str(tmp_path / "ca.crt"), str(tmp_path / "client.crt"), str(tmp_path / "client.key")
    )
    with cert_folder(tls, {}) as folder:
        assert folder != str(tmp_path)
        assert oct(os.stat(folder).st_mode & 0o777) == "0o700"
        found = {n: Path(folder, n).read_text(encoding="utf-8") for n in os.listdir(folder)}
        assert found == {"ca.pem": "ca.crt", "cert.pem": "client.crt", "key.pem": "client.key"}
    assert not os.path.exists(folder)


def test_files_named_as_the_cli_wants_are_used_where_they_are(tmp_path: Path) -> None:
    tls = TLSFiles(*(str(tmp_path / f"{n}.pem") for n in ("ca", "cert", "key")))
    with cert_folder(tls, {}) as folder:
        assert folder == str(tmp_path)
    assert tmp_path.is_dir()
