"""Every upstream URL the providers talk to, each overridable by an environment variable.

Overrides exist for tests (a fake upstream on loopback) and for enterprise gateways. They are
read at call time, not import time, so a process can change them and tests can set them per
test. A per-account ``custom_endpoint`` takes precedence over all of these.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

__all__ = [
    "ANTHROPIC_API",
    "ANTHROPIC_COMPATIBLE",
    "ENDPOINTS",
    "MINIMAX_API",
    "MINIMAX_USAGE",
    "NANOGPT_API",
    "OAUTH_AUTHORIZE_CLAUDE",
    "OAUTH_AUTHORIZE_CONSOLE",
    "OAUTH_REDIRECT_URI",
    "OAUTH_TOKEN",
    "OPENAI_COMPATIBLE",
    "VERTEX_AI",
    "ZAI_API",
    "ZAI_USAGE",
    "Endpoint",
]


class Endpoint(msgspec.Struct, frozen=True):
    """A default URL and the variables that override it (first one set wins)."""

    env: tuple[str, ...]
    default: str
    description: str

    def url(self, environ: Mapping[str, str] | None = None) -> str:
        """The URL in force: the first override that is set and non-empty, else the default."""
        source = os.environ if environ is None else environ
        for name in self.env:
            value = source.get(name, "").strip()
            if value:
                return value.rstrip("/")
        return self.default


ANTHROPIC_API = Endpoint(
    ("BETTER_CCFLARE_ANTHROPIC_API_URL",),
    "https://api.anthropic.com",
    "Anthropic API for Claude OAuth and console accounts, and the OAuth usage endpoint.",
)
OAUTH_TOKEN = Endpoint(
    ("BETTER_CCFLARE_OAUTH_TOKEN_URL",),
    "https://platform.claude.com/v1/oauth/token",
    "Anthropic OAuth token endpoint (code exchange and refresh).",
)
OAUTH_AUTHORIZE_CLAUDE = Endpoint(
    ("BETTER_CCFLARE_OAUTH_AUTHORIZE_URL",),
    "https://claude.ai/oauth/authorize",
    "Authorize page for Claude subscription logins.",
)
OAUTH_AUTHORIZE_CONSOLE = Endpoint(
    ("BETTER_CCFLARE_OAUTH_CONSOLE_AUTHORIZE_URL", "BETTER_CCFLARE_OAUTH_AUTHORIZE_URL"),
    "https://console.anthropic.com/oauth/authorize",
    "Authorize page for console logins (falls back to BETTER_CCFLARE_OAUTH_AUTHORIZE_URL).",
)
OAUTH_REDIRECT_URI = "https://platform.claude.com/oauth/code/callback"
"""Registered for the public client id; it shows the ``code#state`` string to paste back."""

ZAI_API = Endpoint(
    ("BETTER_CCFLARE_ZAI_BASE_URL",),
    "https://api.z.ai/api/anthropic",
    "z.ai Anthropic-compatible API.",
)
ZAI_USAGE = Endpoint(
    ("BETTER_CCFLARE_ZAI_USAGE_URL",),
    "https://api.z.ai/api/monitor/usage/quota/limit",
    "z.ai quota endpoint.",
)
MINIMAX_API = Endpoint(
    ("BETTER_CCFLARE_MINIMAX_BASE_URL",),
    "https://api.minimax.io/anthropic",
    "Minimax Anthropic-compatible API.",
)
MINIMAX_USAGE = Endpoint(
    ("BETTER_CCFLARE_MINIMAX_USAGE_URL",),
    "https://www.minimax.io/v1/token_plan/remains",
    "Minimax token-plan endpoint.",
)
NANOGPT_API = Endpoint(
    ("BETTER_CCFLARE_NANOGPT_BASE_URL",),
    "https://nano-gpt.com/api",
    "NanoGPT API; its usage endpoint is <base>/subscription/v1/usage.",
)
OPENAI_COMPATIBLE = Endpoint(
    ("BETTER_CCFLARE_OPENAI_COMPATIBLE_BASE_URL",),
    "https://api.openai.com",
    "Default upstream for openai-compatible accounts without a custom endpoint.",
)
ANTHROPIC_COMPATIBLE = Endpoint(
    ("BETTER_CCFLARE_ANTHROPIC_COMPATIBLE_BASE_URL", "ANTHROPIC_COMPATIBLE_BASE_URL"),
    "https://api.anthropic.com",
    "Default upstream for anthropic-compatible accounts without a custom endpoint.",
)
VERTEX_AI = Endpoint(
    ("BETTER_CCFLARE_VERTEX_AI_BASE_URL",),
    "https://{region}-aiplatform.googleapis.com",
    "Vertex AI; {region} is filled in (the global region has no prefix).",
)

ENDPOINTS: tuple[Endpoint, ...] = (
    ANTHROPIC_API,
    OAUTH_TOKEN,
    OAUTH_AUTHORIZE_CLAUDE,
    OAUTH_AUTHORIZE_CONSOLE,
    ZAI_API,
    ZAI_USAGE,
    MINIMAX_API,
    MINIMAX_USAGE,
    NANOGPT_API,
    OPENAI_COMPATIBLE,
    ANTHROPIC_COMPATIBLE,
    VERTEX_AI,
)
"""All overridable endpoints, for documentation and ``config show``."""
