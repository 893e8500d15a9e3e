"""Logging in from the terminal: Claude subscriptions and Anthropic console accounts.

PKCE with the paste-the-code flow Claude Code uses: print the authorize URL (and open a
browser when there is a terminal to return to), read the ``code#state`` the callback page shows,
check the state, and exchange the code. A subscription keeps the tokens; a console login uses
its token once, to mint the API key the account then uses.
"""

from __future__ import annotations

import sys
import webbrowser

import click
import httpx2
import msgspec

from better_ccflare.core import Config, Credentials, OAuthMode, SystemClock
from better_ccflare.providers import (
    OAuthError,
    OAuthTransientError,
    build_authorize_url,
    create_console_api_key,
    exchange_code,
    generate_pkce,
    generate_state,
    parse_code_paste,
)

from ._context import run_async
from ._errors import RuntimeFailure, UserError
from ._output import spinner

__all__ = ["log_in"]

_WHAT: dict[OAuthMode, str] = {
    OAuthMode.CLAUDE_OAUTH: "the Claude account (claude.ai) to use",
    OAuthMode.CONSOLE: "the Anthropic console account to mint an API key in",
}


class _Pasted(msgspec.Struct, frozen=True):
    code: str
    state: str
    verifier: str


def log_in(config: Config, mode: OAuthMode) -> Credentials:
    """Walk the user through a login; the tokens (anthropic) or the minted key (claude-console-api).

    Raises:
        UserError: The pasted code is malformed, from another login, or refused.
        RuntimeFailure: Anthropic could not be reached or is failing (via ``run_async``).
    """
    pasted = _prompt_for_code(config, mode)
    with spinner("Completing the login"):
        return run_async(_complete(config, mode, pasted))


def _prompt_for_code(config: Config, mode: OAuthMode) -> _Pasted:
    pkce, state = generate_pkce(), generate_state()
    url = build_authorize_url(mode=mode, client_id=config.client_id, pkce=pkce, state=state)
    click.echo(f"Open this URL, log in with {_WHAT[mode]}, and approve access:")
    click.echo(url)
    if sys.stdout.isatty():
        webbrowser.open(url)
    text = click.prompt("Paste the code shown after approving (it looks like CODE#STATE)")
    try:
        code = parse_code_paste(text, expected_state=state)
    except OAuthError as exc:
        raise UserError(str(exc)) from exc
    return _Pasted(code, state, pkce.verifier)


async def _complete(config: Config, mode: OAuthMode, pasted: _Pasted) -> Credentials:
    async with httpx2.AsyncClient() as client:
        try:
            tokens = await exchange_code(
                client,
                code=pasted.code,
                state=pasted.state,
                verifier=pasted.verifier,
                client_id=config.client_id,
                now_ms=SystemClock().now_ms(),
            )
            if mode is OAuthMode.CLAUDE_OAUTH:
                return tokens
            key = await create_console_api_key(client, access_token=tokens.access_token or "")
        except OAuthTransientError as exc:
            raise RuntimeFailure(f"The login could not be completed: {exc}") from exc
        except OAuthError as exc:
            raise UserError(f"The login could not be completed: {exc}") from exc
    return Credentials(api_key=key)
