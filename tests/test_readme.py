"""The README is a user's guide: its first commands, then how to use the proxy with Claude Code."""

from __future__ import annotations

import json
import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_the_first_commands_serve_and_test() -> None:
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == [
        "python3 scripts/uvw.py run better-ccflare serve",
        "python3 scripts/uvw.py run pytest",
    ]


def test_the_claude_code_section_names_every_variable_claude_code_reads() -> None:
    text = section("Use it with Claude Code")
    for name in ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"):
        assert f"`{name}`" in text or f"{name}=" in text, name
    assert "API_TIMEOUT_MS" in text
    assert "BETTER_CCFLARE_FIRST_BYTE_TIMEOUT_MS" in text


def test_the_settings_json_snippet_is_valid_and_sets_the_environment() -> None:
    text = section("Use it with Claude Code")
    assert "~/.claude/settings.json" in text
    [snippet] = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)
    env = json.loads(snippet)["env"]
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8080"
    assert set(env) == {"ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "API_TIMEOUT_MS"}
    assert int(env["API_TIMEOUT_MS"]) > 240_000


def test_the_settings_json_snippet_runs_the_status_line_command() -> None:
    [snippet] = re.findall(r"```json\n(.*?)```", section("Use it with Claude Code"), re.DOTALL)
    assert json.loads(snippet)["statusLine"] == {
        "type": "command",
        "command": "better-ccflare statusline",
    }


def test_user_matter_comes_before_development_matter() -> None:
    headings = re.findall(r"^## (.+)$", README, flags=re.MULTILINE)
    assert headings[-1] == "Development"
    assert headings.index("Install it without a clone") < headings.index("Use it with Claude Code")
