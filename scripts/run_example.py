"""Show dockerpkg on examples/tree against a throwaway registry (what `make run` does).

Starts a registry with generated credentials, publishes the busybox base image to it, writes a
config naming both, then runs `dockerpkg build` and `dockerpkg plan` on the example tree.
Expects a running Docker daemon (`make run` starts one) and the repository root on sys.path.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import services

ROOT = Path(__file__).resolve().parent.parent
TREE = "examples/tree"
# The dockerpkg of the interpreter running this script: .venv/bin/dockerpkg under make.
DOCKERPKG = Path(sys.prefix, "bin", "dockerpkg")


def write_config(directory: Path, registry: services.Registry, base_image: str) -> Path:
    config = directory / "config.yaml"
    config.touch(mode=0o600)  # it holds the registry password
    # The example's own config, with this run's registry, credentials and base image.
    example = (ROOT / "examples" / "config.yaml").read_text(encoding="utf-8")
    kept = [
        line
        for line in example.splitlines()
        if not line.startswith(("registry:", "base_images:", "  - "))
    ]
    config.write_text(
        "\n".join(kept) + "\n"
        f"registry: {registry.host}\n"
        f"username: {registry.username}\n"
        f"password: {registry.password}\n"
        f"base_images:\n"
        f"  - {base_image}\n",
        encoding="utf-8",
    )
    return config


def step(message: str) -> None:
    print(f"run-example: {message}", file=sys.stderr, flush=True)


def main() -> int:
    client = services.connect_docker()
    with (
        services.start_registry(auth="htpasswd") as registry,
        tempfile.TemporaryDirectory(prefix="dockerpkg-example-") as work,
    ):
        step(f"registry at {registry.url} (htpasswd, user {registry.username})")
        base = services.tag_image(
            client, services.build_busybox_base(client), registry.ref("base/busybox:1.36")
        )
        try:
            services.push_image(client, base, registry)
            step(f"pushed base image {base}")
            return run_dockerpkg(write_config(Path(work), registry, base))
        finally:
            step("stopping the registry")
            # The registry's port is random: the tag would be garbage after this run.
            client.images.remove(base)


def run_dockerpkg(config: Path) -> int:
    for command in ("build", "plan"):
        step(f"dockerpkg -c CONFIG {command} {TREE}")
        argv = [str(DOCKERPKG), "-c", str(config), command, TREE]
        status = subprocess.run(argv, cwd=ROOT, check=False).returncode
        if status != 0:
            step(f"dockerpkg {command} exited with status {status}")
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
