"""Install the built wheels into a fresh virtual environment and import every package.

This is what a user of PyPI gets: no workspace, no editable installs, no sources. It catches a
member that only works because of something the workspace provides (an undeclared dependency,
a file missing from the wheel, an unbounded sibling requirement).

    python3 scripts/smoke_wheels.py dist/
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGES = (
    "better_ccflare.core",
    "better_ccflare.logger",
    "better_ccflare.database",
    "better_ccflare.providers",
    "better_ccflare.load_balancer",
    "better_ccflare.proxy",
    "better_ccflare.http_api",
    "better_ccflare.server",
    "better_ccflare.cli",
)


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


PROJECT_URLS = ("Homepage", "Documentation", "Source", "Issues")


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(metadata).decode()


def missing_project_urls(wheel: Path) -> list[str]:
    """The ``Project-URL`` labels a wheel lacks (``--help`` and PyPI point users to them)."""
    text = wheel_metadata(wheel)
    return [label for label in PROJECT_URLS if f"Project-URL: {label}, https://" not in text]


def unbounded_sibling_requirements(wheel: Path) -> list[str]:
    """``Requires-Dist`` lines naming a sibling distribution without an upper bound."""
    text = wheel_metadata(wheel)
    lines = re.findall(r"^Requires-Dist: (better-ccflare\S*.*)$", text, flags=re.MULTILINE)
    return [line for line in lines if "<" not in line]


def main(dist: Path, uv: str) -> None:
    wheels = sorted(str(p) for p in dist.glob("*.whl"))
    if len(wheels) != len(PACKAGES):
        sys.exit(f"expected {len(PACKAGES)} wheels in {dist}, found {len(wheels)}: {wheels}")
    loose = [(w, r) for w in wheels for r in unbounded_sibling_requirements(Path(w))]
    if loose:
        sys.exit(f"sibling requirements without an upper bound: {loose}")
    unlinked = [(w, m) for w in wheels if (m := missing_project_urls(Path(w)))]
    if unlinked:
        sys.exit(f"wheels without these Project-URLs: {unlinked}")
    with tempfile.TemporaryDirectory(prefix="ccflare-smoke-") as tmp:
        venv = Path(tmp) / "venv"
        run(uv, "venv", "--quiet", "--python", sys.executable, str(venv))
        python = str(venv / "bin" / "python")
        run(uv, "pip", "install", "--quiet", "--python", python, *wheels)
        for package in PACKAGES:
            run(python, "-I", "-c", f"import {package}")
        usage = run(str(venv / "bin" / "better-ccflare"), "--help")
        if "Documentation: https://" not in usage:
            sys.exit(f"the installed better-ccflare --help names no documentation:\n{usage}")
    print(
        f"smoke: {len(PACKAGES)} wheels installed into a fresh venv; every package imports; "
        "`better-ccflare --help` names the documentation."
    )


if __name__ == "__main__":
    from uvw import find_uv  # scripts/ is on sys.path when this file runs as a script

    main(Path(sys.argv[1]), find_uv())
