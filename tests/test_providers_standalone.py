"""The provider library on its own, as a user installs it: wheels in a fresh venv.

The README's standalone example is extracted and run in that venv against a fake token server
on loopback: it must build an authorize URL, exchange a code, refresh a token and translate a
request, with nothing of the server stack installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .support.fake_upstream import FakeUpstream, RecordedRequest, Reply

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "packages" / "providers" / "README.md"


def readme_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- standalone-example -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "the providers README lost its standalone example"
    return match.group(1)


def uv_executable() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "uv is needed to build the wheels"
    return found


async def run(*args: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
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


async def test_readme_example_runs_from_wheels_without_the_server_stack(tmp_path: Path) -> None:
    uv = uv_executable()
    dist = tmp_path / "dist"
    for package in ("better-ccflare-core", "better-ccflare-providers"):
        code, _, err = await run(
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
        )
        assert code == 0, err.decode()
    venv = tmp_path / "venv"
    code, _, err = await run(uv, "venv", "--quiet", "--python", sys.executable, str(venv))
    assert code == 0, err.decode()
    python = str(venv / "bin" / "python")
    wheels = [str(p) for p in dist.glob("*.whl")]
    code, _, err = await run(uv, "pip", "install", "--quiet", "--python", python, *wheels)
    assert code == 0, err.decode()

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
