"""Claude Code subagents: their files, their discovery and cache, and how a request is matched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.core import AgentAttributionSource, AgentPreference, FakeClock
from better_ccflare.proxy._request_checks import read_routing
from better_ccflare.proxy.agents import (
    DISCOVERY_TTL_MS,
    Agent,
    AgentDirectory,
    AgentInterceptor,
    discover_agents,
    match_agent,
    parse_agent_file,
    system_prompt,
    workspace_in_prompt,
)

_plain = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\"'#-:"),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)


@given(name=_plain, description=_plain, model=_plain, body=st.text(max_size=200))
def test_front_matter_fields_and_body_come_back_as_written(
    name: str, description: str, model: str, body: str
) -> None:
    text = f"---\nname: {name}\ndescription: {description}\nmodel: {model}\n---\n{body}"
    parsed = parse_agent_file(text, "stem")
    assert (parsed.name, parsed.description, parsed.model) == (name, description, model)
    assert parsed.prompt == "\n".join(text.splitlines()[5:]).strip()


@given(st.text(max_size=300))
def test_any_text_parses_without_error(text: str) -> None:
    parsed = parse_agent_file(text, "stem")
    assert parsed.name
    assert parsed.prompt == parsed.prompt.strip()


def test_a_file_without_front_matter_is_all_prompt_named_by_its_stem() -> None:
    parsed = parse_agent_file("You review code.\n", "reviewer")
    assert (parsed.name, parsed.model, parsed.prompt) == ("reviewer", None, "You review code.")


def test_quoted_values_lists_and_comments_in_front_matter() -> None:
    text = "---\nname: \"planner\"\n# a comment\ntools:\n  - Read\nmodel: 'opus'\n---\nPlan."
    parsed = parse_agent_file(text, "x")
    assert (parsed.name, parsed.model, parsed.prompt) == ("planner", "opus", "Plan.")


def _write_agent(directory: Path, name: str, prompt: str, model: str = "sonnet") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = f"---\nname: {name}\ndescription: {name} agent\nmodel: {model}\n---\n{prompt}\n"
    (directory / f"{name}.md").write_text(text)


def test_agents_come_from_home_and_registered_workspaces(tmp_path: Path) -> None:
    _write_agent(tmp_path / ".claude" / "agents", "reviewer", "You review code.")
    project = tmp_path / "src" / "app"
    _write_agent(project / ".claude" / "agents", "tester", "You write tests.")
    registry = tmp_path / ".better-ccflare" / "workspaces.json"
    registry.parent.mkdir()
    registry.write_text(
        msgspec.json.encode(
            {"version": 1, "workspaces": [{"path": str(project), "name": "app", "lastSeen": 1}]}
        ).decode()
    )
    found = discover_agents(tmp_path)
    assert [(a.id, a.workspace) for a in found.agents] == [
        ("reviewer", None),
        ("tester", str(project)),
    ]
    assert [w.name for w in found.workspaces] == ["app"]


def test_no_agent_directory_means_no_agents(tmp_path: Path) -> None:
    assert discover_agents(tmp_path).agents == ()


async def test_discovery_is_cached_until_its_ttl_passes(tmp_path: Path) -> None:
    clock = FakeClock()
    directory = AgentDirectory(tmp_path, clock)
    assert (await directory.discovered()).agents == ()
    _write_agent(tmp_path / ".claude" / "agents", "reviewer", "You review code.")
    assert (await directory.discovered()).agents == ()
    clock.advance(DISCOVERY_TTL_MS)
    assert [a.id for a in (await directory.discovered()).agents] == ["reviewer"]


def _agent(agent_id: str, prompt: str) -> Agent:
    return Agent(id=agent_id, description="", model=None, prompt=prompt, path="")


def test_the_agent_whose_prompt_is_in_the_system_prompt_matches() -> None:
    agents = [_agent("a", "You review code."), _agent("b", "You write tests.")]
    assert match_agent("Intro.\nYou write tests.\nMore.", agents) == agents[1]
    assert match_agent("Nothing of the kind.", agents) is None


def test_the_longest_matching_prompt_wins_and_empty_prompts_never_match() -> None:
    agents = [_agent("short", "review"), _agent("long", "You review code."), _agent("e", "")]
    assert match_agent("You review code.", agents) == agents[1]
    assert match_agent("anything", [_agent("e", "")]) is None


def test_system_prompt_reads_strings_and_text_blocks() -> None:
    blocks = {"system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]}
    assert system_prompt(msgspec.json.encode(blocks)) == "A\nB"
    assert system_prompt(b'{"system":"S","messages":[]}') == "S"
    assert system_prompt(b'{"messages":[]}') is None
    assert system_prompt(b"not json") is None


def test_the_working_directory_of_a_claude_code_prompt() -> None:
    prompt = "<env>\nWorking directory: /home/me/src/app\nIs directory a git repo: Yes\n</env>"
    assert workspace_in_prompt(prompt) == "/home/me/src/app"
    assert workspace_in_prompt("no env here") is None


class _Preferences:
    def __init__(self, *preferences: AgentPreference) -> None:
        self.stored = {p.agent_id: p for p in preferences}
        self.reads = 0

    async def get(self, agent_id: str) -> AgentPreference | None:
        self.reads += 1
        return self.stored.get(agent_id)

    async def set(self, preference: AgentPreference) -> None:
        self.stored[preference.agent_id] = preference

    async def list_all(self) -> list[AgentPreference]:
        return list(self.stored.values())

    async def delete(self, agent_id: str) -> None:
        del self.stored[agent_id]


def _interceptor(
    home: Path, *preferences: AgentPreference
) -> tuple[AgentInterceptor, _Preferences]:
    repository = _Preferences(*preferences)
    return AgentInterceptor(AgentDirectory(home, FakeClock()), repository), repository


_BODY = b'{"model":"claude-sonnet-5","system":"You review code.","messages":[]}'


async def test_a_matched_agent_with_a_preference_gets_its_model(tmp_path: Path) -> None:
    _write_agent(tmp_path / ".claude" / "agents", "reviewer", "You review code.")
    pinned = AgentPreference(agent_id="reviewer", model="claude-opus-5", updated_at_ms=0)
    interceptor, _ = _interceptor(tmp_path, pinned)
    match = await interceptor.resolve({}, _BODY, read_routing(_BODY, None))
    assert match is not None
    assert (match.agent_id, match.source) == ("reviewer", AgentAttributionSource.PROMPT)
    assert (match.original_model, match.routing.model) == ("claude-sonnet-5", "claude-opus-5")
    assert msgspec.json.decode(match.body)["model"] == "claude-opus-5"


async def test_the_header_wins_over_the_prompt(tmp_path: Path) -> None:
    _write_agent(tmp_path / ".claude" / "agents", "reviewer", "You review code.")
    interceptor, _ = _interceptor(tmp_path)
    headers = {"x-better-ccflare-agent-id": "planner"}
    match = await interceptor.resolve(headers, _BODY, read_routing(_BODY, None))
    assert match is not None
    assert (match.agent_id, match.source) == ("planner", AgentAttributionSource.HEADER)
    assert match.body is _BODY
    assert not match.rewritten


async def test_without_agents_a_request_reads_no_preference(tmp_path: Path) -> None:
    interceptor, repository = _interceptor(tmp_path)
    assert await interceptor.resolve({}, _BODY, read_routing(_BODY, None)) is None
    assert repository.reads == 0


async def test_autodiscovery_registers_a_working_directory_with_agents(tmp_path: Path) -> None:
    project = tmp_path / "src" / "app"
    _write_agent(project / ".claude" / "agents", "tester", "You write tests.")
    clock = FakeClock()
    directory = AgentDirectory(tmp_path, clock, autodiscover=True)
    interceptor = AgentInterceptor(directory, _Preferences())
    body = msgspec.json.encode({"system": f"Working directory: {project}\n", "messages": []})
    assert await interceptor.resolve({}, body, read_routing(body, None)) is None
    for _ in range(100):
        if (tmp_path / ".better-ccflare" / "workspaces.json").exists():
            break
        await asyncio.sleep(0.01)
    assert [a.id for a in (await directory.discovered()).agents] == ["tester"]


async def test_autodiscovery_is_off_by_default(tmp_path: Path) -> None:
    project = tmp_path / "app"
    _write_agent(project / ".claude" / "agents", "tester", "You write tests.")
    directory = AgentDirectory(tmp_path, FakeClock())
    body = msgspec.json.encode({"system": f"Working directory: {project}\n", "messages": []})
    await AgentInterceptor(directory, _Preferences()).resolve({}, body, read_routing(body, None))
    await asyncio.sleep(0.05)
    assert not (tmp_path / ".better-ccflare").exists()
