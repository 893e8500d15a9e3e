"""A real PostgreSQL server for the tests, never a mock, and a fresh database for each test.

Which server, in order:

1. ``BETTER_CCFLARE_TEST_DATABASE_URL`` (a URL whose user may create databases), if set;
2. the server on 127.0.0.1:5432 as user ``postgres``, if one answers (CI machines run one);
3. a throwaway cluster started here with Debian's ``initdb`` and ``pg_ctl`` (from
   ``/usr/lib/postgresql/*/bin``, installing the ``postgresql`` package with apt-get when it is
   missing and this process is root), on a free loopback port, stopped and deleted afterwards.

Nothing here is ever skipped: without any of the three the tests fail and say what to install.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Coroutine, Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import pytest

__all__ = ["ENV_VAR", "create_database", "drop_database", "postgres_server"]

_T = TypeVar("_T")
ENV_VAR = "BETTER_CCFLARE_TEST_DATABASE_URL"
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_HOW_TO_INSTALL = (
    f"No PostgreSQL for the tests: set {ENV_VAR}, run a server on 127.0.0.1:5432 (user postgres), "
    "or install Debian's postgresql package (sudo apt-get install -y postgresql) so the tests can "
    "start their own."
)


async def _answers(url: str) -> bool:
    try:
        connection = await asyncpg.connect(url, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await connection.close()
    return True


def _on_a_thread(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` on a loop of its own: fixtures call this, inside a running loop or not."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


@contextlib.contextmanager
def postgres_server() -> Generator[str]:
    """The URL of a server's maintenance database, where test databases are created."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        yield configured
    elif _on_a_thread(_answers(LOCAL_URL)):
        yield LOCAL_URL
    else:
        with _throwaway_cluster() as url:
            yield url


def create_database(server_url: str) -> str:
    """A new, empty database on the server; its URL."""
    name = f"bccf_test_{secrets.token_hex(6)}"
    _on_a_thread(_execute(server_url, f'CREATE DATABASE "{name}"'))
    return urlsplit(server_url)._replace(path=f"/{name}").geturl()


def drop_database(server_url: str, database_url: str) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    _on_a_thread(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _execute(server_url: str, sql: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _install_postgresql() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)  # a fresh machine's lists
        subprocess.run(install, env=env, check=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _throwaway_cluster() -> Generator[str]:
    binaries = _binaries()
    if binaries is None and os.geteuid() == 0 and shutil.which("apt-get"):
        _install_postgresql()
        binaries = _binaries()
    if binaries is None:
        pytest.fail(_HOW_TO_INSTALL, pytrace=False)
    # initdb refuses to run as root; Debian's package creates the postgres user for this.
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="bccf-postgres-"))
    data = root / "data"
    port = _free_port()
    if run_as:
        shutil.chown(root, "postgres")
    subprocess.run(
        [*run_as, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *run_as,
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "start",
            "-l",
            str(root / "log"),
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
