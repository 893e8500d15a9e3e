"""Debian's Chromium for the browser tests, never a downloaded browser.

Playwright drives ``/usr/bin/chromium`` through ``executable_path``. When it is missing, a root
shell with apt-get installs it (as CI does); anywhere else the test fails with the one command
that fixes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "ensure_chromium"]

CHROMIUM = Path("/usr/bin/chromium")

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps dialling Google's hosts, which the test machines refuse.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

_HOW_TO_INSTALL = (
    "Debian's chromium is missing at /usr/bin/chromium: sudo apt-get install -y chromium"
)


def _apt_install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        # A fresh machine may not have package lists yet.
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)


def ensure_chromium() -> Path:
    """The Chromium binary, installed first when this process may do so.

    Returns:
        ``/usr/bin/chromium``.
    """
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            _apt_install()
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"{_HOW_TO_INSTALL} (automatic install failed: {exc})", pytrace=False)
        if CHROMIUM.exists():
            return CHROMIUM
    pytest.fail(_HOW_TO_INSTALL, pytrace=False)
