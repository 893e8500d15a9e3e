"""Claude Code subagents: discovered from their files, recognised in requests, and given the
model their stored preference names.

The interceptor runs on the request path (one call at the proxy's entry); discovery reads files
in a worker thread and caches them for 30 seconds; the management API lists them from the
server's :class:`AgentDirectory` and the CLI from :func:`discover_agents`, both through
:func:`agent_catalog`.
"""

from ._agent_file import AgentFile, parse_agent_file
from ._catalog import (
    AgentCatalog,
    AgentEntry,
    AgentOrigin,
    agent_catalog,
    clear_agent_model,
    set_agent_model,
)
from ._discovery import DISCOVERY_TTL_MS, Agent, AgentDirectory, Discovered, discover_agents
from ._interceptor import AGENT_HEADERS, AgentInterceptor, AgentMatch
from ._matching import match_agent, system_prompt
from ._workspaces import Workspace, read_workspaces, workspace_in_prompt

__all__ = [
    "AGENT_HEADERS",
    "DISCOVERY_TTL_MS",
    "Agent",
    "AgentCatalog",
    "AgentDirectory",
    "AgentEntry",
    "AgentFile",
    "AgentInterceptor",
    "AgentMatch",
    "AgentOrigin",
    "Discovered",
    "Workspace",
    "agent_catalog",
    "clear_agent_model",
    "discover_agents",
    "match_agent",
    "parse_agent_file",
    "read_workspaces",
    "set_agent_model",
    "system_prompt",
    "workspace_in_prompt",
]
