"""The provider library on its own, as a user installs it: wheels in a fresh venv.

The README's examples are extracted and run in that venv, against a fake token server and a
fake Anthropic API on loopback: the high-level one sends a message as an OAuth account whose
token must be refreshed first; the low-level one builds a request and reads usage; the
standalone one builds an authorize URL, exchanges a code, refreshes a token and translates a
request. Nothing of the server stack is installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from .support.fake_upstream import FakeUpstream, RecordedRequest, Reply

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "packages" / "providers" / "README.md"


def readme_example(name: str = "standalone") -> str:
    text = README.read_text()
    match = re.search(rf"<!-- {name}-example -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, f"the providers README lost its {name} example"
    return match.group(1)


def uv_executable() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "uv is needed to build the wheels"
    return found


async def run(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return process.returncode, out, err


def request_grant(request: RecordedRequest) -> object:
    return request.json()["grant_type"]


def token_server(request: RecordedRequest) -> Reply:
    body = request.json()
    if body.get("grant_type") == "authorization_code":
        assert body["code"] == "the-code"
        return Reply.json({"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600})
    assert body == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-1",
        "client_id": body["client_id"],
    }
    return Reply.json({"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 7200})


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh venv holding only the core and providers wheels (and their dependencies)."""
    uv = uv_executable()
    root = tmp_path_factory.mktemp("standalone")
    dist = root / "dist"
    for package in ("better-ccflare-core", "better-ccflare-providers"):
        subprocess.run(
            [
                uv,
                "build",
                "--quiet",
                "--package",
                package,
                "--no-sources",
                "--wheel",
                "--out-dir",
                str(dist),
                str(ROOT),
            ],
            check=True,
            capture_output=True,
        )
    venv = root / "venv"
    subprocess.run(
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        check=True,
        capture_output=True,
    )
    python = str(venv / "bin" / "python")
    wheels = [str(p) for p in dist.glob("*.whl")]
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", python, *wheels],
        check=True,
        capture_output=True,
    )
    return python


async def test_readme_example_runs_from_wheels_without_the_server_stack(
    tmp_path: Path, venv_python: str
) -> None:
    python = venv_python
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    async with FakeUpstream() as upstream:
        upstream.set_default(token_server)
        process = await asyncio.create_subprocess_exec(
            python,
            "-I",
            str(script),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "BETTER_CCFLARE_OAUTH_TOKEN_URL": f"{upstream.url}/v1/oauth/token"},
        )
        assert process.stdout is not None
        assert process.stdin is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        url = first.rsplit(" ", 1)[-1].strip()
        query = parse_qs(urlsplit(url).query)
        assert urlsplit(url).netloc == "claude.ai"
        assert query["code_challenge_method"] == ["S256"]
        process.stdin.write(f"the-code#{query['state'][0]}\n".encode())
        await process.stdin.drain()
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()

    lines = out.decode().splitlines()
    assert "logged in" in lines[0]
    assert "refreshed" in lines[1]
    translated = json.loads(lines[-1])
    assert translated["messages"][0] == {"role": "system", "content": "Be brief."}
    grants = [request_grant(r) for r in upstream.requests]
    assert grants == ["authorization_code", "refresh_token"]

    code, out, _ = await run(
        python,
        "-I",
        "-c",
        "import sys, better_ccflare.providers; "
        "print(sorted(m for m in ('litestar', 'sqlite_utils', 'click') if m in sys.modules))",
    )
    assert code == 0
    assert out.decode().strip() == "[]"


def anthropic_api(request: RecordedRequest) -> Reply:
    """The token endpoint and the Messages API of a subscription whose token has expired."""
    if request.path == "/v1/oauth/token":
        assert request.json()["grant_type"] == "refresh_token"
        assert request.json()["refresh_token"] == "sk-ant-ort01-..."
        return Reply.json({"access_token": "at-new", "refresh_token": "rt-new", "expires_in": 3600})
    assert request.path == "/v1/messages"
    return Reply.json(
        {"type": "message", "content": [{"type": "text", "text": "Hello back"}]},
        headers={"anthropic-ratelimit-unified-status": "allowed"},
    )


async def test_readme_high_level_example_refreshes_and_sends_as_the_account(
    tmp_path: Path, venv_python: str
) -> None:
    script = tmp_path / "high_level.py"
    script.write_text(readme_example("high-level"))
    async with FakeUpstream() as upstream:
        upstream.set_default(anthropic_api)
        env = {
            **os.environ,
            "BETTER_CCFLARE_OAUTH_TOKEN_URL": f"{upstream.url}/v1/oauth/token",
            "BETTER_CCFLARE_ANTHROPIC_API_URL": upstream.url,
        }
        code, out, err = await run(venv_python, "-I", str(script), env=env)
    assert code == 0, err.decode()
    refreshed, answer = out.decode().splitlines()
    assert refreshed.startswith("token refreshed; it expires at ")
    assert answer == "Hello back"
    token_call, message_call = upstream.requests
    assert token_call.path == "/v1/oauth/token"
    assert message_call.headers["authorization"] == "Bearer at-new"
    assert "x-api-key" not in message_call.headers
    assert message_call.json()["model"] == "claude-sonnet-4-5"


async def test_readme_low_level_example_prints_what_its_comments_say(
    tmp_path: Path, venv_python: str
) -> None:
    example = readme_example("low-level")
    script = tmp_path / "low_level.py"
    script.write_text(example)
    code, out, err = await run(venv_python, "-I", str(script))
    assert code == 0, err.decode()
    url, body, tokens = out.decode().splitlines()
    assert url == "https://api.anthropic.com/v1/messages"
    assert "claude-sonnet-4-5-20250929" in body
    assert tokens == "15"
    assert "# https://api.anthropic.com/v1/messages" in example
    assert "# 15" in example
