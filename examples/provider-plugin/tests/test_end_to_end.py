"""Publishing a provider works end to end: built wheels, a fresh venv, the CLI, a real server.

What a plugin author's user does: ``pip install better-ccflare better-ccflare-provider-example``,
add an account of the plugin's type with the CLI, start ``better-ccflare serve``, and send a
request. The workspace's wheels and the plugin's wheel are built once per test session
(``uv build``) and installed into a fresh venv, offline from those wheels and the uv cache
when it holds every dependency (else from the package index). Nothing of the checkout is
importable there. The upstream is a fake on loopback; the server must send it the request
with the plugin's auth header and the account's key.

Slow (it builds nine wheels), so it is one test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Generator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PLUGIN = ROOT / "examples" / "provider-plugin"
PLUGIN_TYPE = "example-gateway"
KEY = "gw-example-key-123"
BUILD_TIMEOUT_S = 600
STEP_TIMEOUT_S = 120


def uv_executable() -> str:
    """uv as the other wheel tests find it, or the checkout's bootstrapped one (scripts/uvw.py)."""
    bootstrapped = ROOT / ".bootstrap" / "bin" / "uv"
    found = os.environ.get("UV") or shutil.which("uv")
    if found is None and bootstrapped.is_file():
        found = str(bootstrapped)
    assert found, "uv is needed to build the wheels (run the tests with scripts/uvw.py run)"
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the workspace's venv or any plugin allow-list."""
    dropped = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "BETTER_CCFLARE_PROVIDERS")
    return {**{k: v for k, v in os.environ.items() if k not in dropped}, **extra}


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float) -> str:
    done = subprocess.run(
        args,
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Every workspace member's wheel and the example plugin's, built once per session."""
    uv = uv_executable()
    dist = tmp_path_factory.mktemp("wheels")
    common = ("--no-sources", "--wheel", "--quiet", "--out-dir", str(dist))
    run(uv, "build", "--all-packages", *common, timeout=BUILD_TIMEOUT_S)
    run(uv, "build", str(PLUGIN), *common, timeout=BUILD_TIMEOUT_S)
    built = sorted(dist.glob("*.whl"))
    assert any(w.name.startswith("better_ccflare_provider_example-") for w in built)
    assert any(w.name.startswith("better_ccflare-") for w in built)
    return built


@pytest.fixture(scope="session")
def venv(wheels: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheels and their dependencies; its ``bin`` directory."""
    uv = uv_executable()
    root = tmp_path_factory.mktemp("venv") / "venv"
    run(uv, "venv", "--quiet", "--python", sys.executable, str(root), timeout=STEP_TIMEOUT_S)
    install = (uv, "pip", "install", "--quiet", "--python", str(root / "bin" / "python"))
    try:
        run(*install, "--offline", *map(str, wheels), timeout=STEP_TIMEOUT_S)
    except AssertionError:  # a dependency missing from the uv cache: fetch it from the index
        run(*install, *map(str, wheels), timeout=BUILD_TIMEOUT_S)
    return root / "bin"


class _Upstream(BaseHTTPRequestHandler):
    """Answers every POST with one Anthropic message; records what it saw."""

    seen: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        reply = json.dumps(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 3, "output_tokens": 1},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what was seen, not a log."""


@contextmanager
def fake_upstream() -> Generator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    seen: list[tuple[str, dict[str, str], bytes]] = []
    handler = type("Upstream", (_Upstream,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(bin_dir: Path, env: dict[str, str], log: Path) -> Generator[subprocess.Popen[bytes]]:
    """``better-ccflare serve`` from the venv, in its own process group; always stopped."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(bin_dir / "better-ccflare"), "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def wait_until_listening(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1).close()
            return
        except urllib.error.HTTPError:  # any answer (a 503 too) means it is listening
            return
        except OSError:
            try:  # wait a little, noticing at once if the server died
                process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"serve exited early:\n{log.read_text()}") from None
    raise AssertionError(f"serve did not answer within 60 s:\n{log.read_text()}")


def test_a_published_plugin_is_added_with_the_cli_and_serves_a_request(
    venv: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        HOME=str(tmp_path),
        PORT=str(port),
        BETTER_CCFLARE_HOST="127.0.0.1",
    )
    with fake_upstream() as (upstream_url, seen):
        added = run(
            str(venv / "better-ccflare"),
            *("account", "add", "gw", "--mode", PLUGIN_TYPE),
            *("--api-key", KEY, "--endpoint", upstream_url),
            cwd=tmp_path,
            env=env,
            timeout=STEP_TIMEOUT_S,
        )
        assert f"Added {PLUGIN_TYPE} account 'gw'" in added

        log = tmp_path / "serve.log"
        url = f"http://127.0.0.1:{port}"
        with serving(venv, env, log) as process:
            wait_until_listening(url, process, log)
            request = urllib.request.Request(
                f"{url}/v1/messages",
                data=json.dumps(
                    {
                        "model": "claude-sonnet-4-5",
                        "max_tokens": 16,
                        "messages": [{"role": "user", "content": "Hello"}],
                    }
                ).encode(),
                headers={"content-type": "application/json", "x-api-key": "client-key"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
                assert json.loads(response.read())["content"][0]["text"] == "hi"

    [(path, headers, _)] = seen
    assert path == "/v1/messages"
    assert headers["x-gateway-key"] == KEY
    assert headers["x-gateway-client"] == "better-ccflare"
    assert "x-api-key" not in headers
    assert "Loaded provider plugin example-gateway" in log.read_text()
