"""Agent preferences under a real server: a Claude Code subagent's request, recognised by its
system prompt, reaches the upstream with the model its preference names, and the history says
which agent, which model was asked for and which was sent, and how the agent was recognised."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from better_ccflare.core import (
    AgentAttributionSource,
    AgentPreference,
    FakeClock,
    RequestRecord,
)

from .support.client import recorded, sdk
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json
from .support.service import console_account, running_proxy

REVIEWER = "You are a meticulous code reviewer. Point out bugs, not style."


async def _ask_as(
    tmp_path: Path, preference: AgentPreference, system: str, headers: dict[str, str] | None = None
) -> tuple[str, RequestRecord]:
    """One request through a real server whose store holds ``preference``: the model the
    upstream got, and the request's record."""
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            await service.store.agent_preferences.set(preference)
            async with sdk(url) as client:
                await client.messages.create(
                    model=MODEL,
                    max_tokens=64,
                    system=[{"type": "text", "text": system}],
                    messages=[{"role": "user", "content": "Go."}],
                    extra_headers=headers,
                )
            [row] = await recorded(service)
            return upstream.requests[0].json()["model"], row


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    agents = home / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "reviewer.md").write_text(
        f"---\nname: reviewer\ndescription: Reviews diffs\nmodel: sonnet\n---\n{REVIEWER}\n"
    )
    monkeypatch.setenv("HOME", str(home))
    return home


async def test_a_subagent_request_is_sent_with_its_preferred_model(
    tmp_path: Path, home: Path
) -> None:
    pinned = AgentPreference(agent_id="reviewer", model="claude-opus-5", updated_at_ms=0)
    sent, row = await _ask_as(tmp_path, pinned, f"Claude Code subagent.\n{REVIEWER}")
    assert sent == "claude-opus-5"
    assert row.agent_used == "reviewer"
    assert row.agent_attribution_source is AgentAttributionSource.PROMPT
    assert (row.original_model, row.applied_model) == (MODEL, "claude-opus-5")


async def test_a_request_from_no_agent_keeps_its_model(tmp_path: Path, home: Path) -> None:
    pinned = AgentPreference(agent_id="reviewer", model="claude-opus-5", updated_at_ms=0)
    sent, row = await _ask_as(tmp_path, pinned, "You are a helpful assistant.")
    assert sent == MODEL
    assert (row.agent_used, row.agent_attribution_source) == (None, None)


async def test_the_agent_header_wins_over_the_prompt(tmp_path: Path, home: Path) -> None:
    pinned = AgentPreference(agent_id="planner", model="claude-haiku-5", updated_at_ms=0)
    headers = {"x-better-ccflare-agent-id": "planner"}
    sent, row = await _ask_as(tmp_path, pinned, REVIEWER, headers)
    assert sent == "claude-haiku-5"
    assert (row.agent_used, row.agent_attribution_source) == (
        "planner",
        AgentAttributionSource.HEADER,
    )


# --------------------------------------------------------------------------- the management API


async def test_the_api_lists_discovered_agents_with_their_preferences(
    tmp_path: Path, home: Path
) -> None:
    project = tmp_path / "project"
    (project / ".claude" / "agents").mkdir(parents=True)
    (project / ".claude" / "agents" / "planner.md").write_text("---\nname: planner\n---\nPlan.\n")
    registry = home / ".better-ccflare" / "workspaces.json"
    registry.parent.mkdir()
    registry.write_text(json.dumps({"workspaces": [{"path": str(project), "name": "project"}]}))
    async with (
        running_proxy(tmp_path, clock=FakeClock()) as (service, url),
        httpx2.AsyncClient(base_url=url) as client,
    ):
        now = service.clock.now_ms()
        pinned = await client.post("/api/agents/reviewer/preference", json={"model": "opus-x"})
        assert pinned.json() == {"id": "reviewer", "model": "opus-x", "updatedAt": now}
        await client.post("/api/agents/header-only/preference", json={"model": "haiku-x"})
        listed = (await client.get("/api/agents")).json()
        assert service.management.agents is service.agents
    by_id = {a["id"]: a for a in listed["agents"]}
    assert list(by_id) == ["header-only", "planner", "reviewer"]
    assert by_id["reviewer"] == {
        "id": "reviewer",
        "origin": "global",
        "description": "Reviews diffs",
        "fileModel": "sonnet",
        "model": "opus-x",
        "updatedAt": now,
        "path": str(home / ".claude" / "agents" / "reviewer.md"),
        "workspace": None,
    }
    assert (by_id["planner"]["origin"], by_id["planner"]["workspace"]) == (
        "workspace",
        str(project),
    )
    assert (by_id["planner"]["model"], by_id["header-only"]["origin"]) == (None, "preference-only")
    assert [w["path"] for w in listed["workspaces"]] == [str(project)]


async def test_a_preference_set_through_the_api_applies_to_the_next_request(
    tmp_path: Path, home: Path
) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with (
            running_proxy(tmp_path, console_account("a", upstream)) as (_, url),
            httpx2.AsyncClient(base_url=url) as client,
            sdk(url) as anthropic,
        ):
            set_ = await client.post("/api/agents/reviewer/preference", json={"model": "opus-x"})
            assert set_.status_code == 200
            await anthropic.messages.create(
                model=MODEL,
                max_tokens=8,
                system=REVIEWER,
                messages=[{"role": "user", "content": "Go."}],
            )
            assert (await client.delete("/api/agents/reviewer/preference")).status_code == 200
            await anthropic.messages.create(
                model=MODEL,
                max_tokens=8,
                system=REVIEWER,
                messages=[{"role": "user", "content": "Go."}],
            )
    assert [r.json()["model"] for r in upstream.requests] == ["opus-x", MODEL]


async def test_the_api_refuses_a_blank_model_and_clearing_a_missing_preference(
    tmp_path: Path, home: Path
) -> None:
    async with (
        running_proxy(tmp_path) as (_, url),
        httpx2.AsyncClient(base_url=url) as client,
    ):
        blank = await client.post("/api/agents/reviewer/preference", json={"model": " "})
        missing = await client.delete("/api/agents/reviewer/preference")
        too_long = await client.post(f"/api/agents/{'a' * 257}/preference", json={"model": "m"})
    assert blank.status_code == 400
    assert missing.status_code == 404
    assert too_long.status_code == 400
    assert too_long.json()["field"] == "agent"
