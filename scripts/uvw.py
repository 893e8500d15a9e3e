"""Run uv, installing it first if this machine does not have it.

Like ``gradlew`` for Gradle: a fresh machine needs only Python 3.11+ and pip. uv is installed
with ``pip install --target`` into ``.bootstrap/`` inside the checkout, which works without
root, without a virtual environment module and on systems whose Python is "externally
managed". Every argument is passed to uv unchanged::

    python3 scripts/uvw.py run better-ccflare serve
    python3 scripts/uvw.py run pytest
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

UV_REQUIREMENT = "uv>=0.13.6,<0.14"
MIN_VERSION = (0, 13, 6)
ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / ".bootstrap"
SERVE_ENVIRONMENT = ".venv-serve"
COMMAND = "better-ccflare"


def _version_of(uv: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    parts = out.split()[1].split(".") if len(out.split()) > 1 else []
    try:
        return tuple(int(p) for p in parts[:3])
    except ValueError:
        return None


def _usable(uv: str) -> bool:
    version = _version_of(uv)
    return version is not None and MIN_VERSION <= version < (0, 14)


def find_uv() -> str:
    """A uv of the right version: on PATH, already bootstrapped, or freshly installed."""
    bootstrapped = str(BOOTSTRAP / "bin" / ("uv.exe" if os.name == "nt" else "uv"))
    for candidate in (shutil.which("uv"), bootstrapped):
        if candidate is not None and _usable(candidate):
            return candidate
    print(f"uvw: installing {UV_REQUIREMENT} into {BOOTSTRAP} ...", file=sys.stderr)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--upgrade",
            "--target",
            str(BOOTSTRAP),
            UV_REQUIREMENT,
        ],
        check=True,
    )
    if not _usable(bootstrapped):
        sys.exit(f"uvw: pip installed uv, but {bootstrapped} does not run; install uv by hand.")
    return bootstrapped


def uv_invocation(args: list[str], environ: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The uv arguments and environment for ``uvw.py ARGS``.

    ``run better-ccflare ...`` runs in the runtime-only environment (unless the caller chose
    one with ``UV_PROJECT_ENVIRONMENT``); anything else, including ``run`` with uv options of
    its own, is passed through unchanged.
    """
    env = dict(environ)
    if args[:2] != ["run", COMMAND]:
        return args, env
    env.setdefault("UV_PROJECT_ENVIRONMENT", SERVE_ENVIRONMENT)
    return ["run", "--no-dev", "--package", COMMAND, *args[1:]], env


def main() -> None:
    uv = find_uv()
    os.chdir(ROOT)
    args, env = uv_invocation(sys.argv[1:], os.environ)
    if os.name == "nt":
        sys.exit(subprocess.run([uv, *args], check=False, env=env).returncode)
    os.execve(uv, [uv, *args], env)


if __name__ == "__main__":
    main()
