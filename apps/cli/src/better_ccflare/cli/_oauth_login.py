"""The Claude subscription login, in the terminal.

PKCE with the paste-the-code flow Claude Code uses: print the authorize URL (and open a
browser when there is a terminal to return to), read the ``code#state`` the callback page shows,
check the state, exchange the code, and keep the tokens encrypted in the store.
"""

from __future__ import annotations

import sys
import webbrowser

import click
import httpx2

from better_ccflare.core import Config, Credentials, OAuthMode, SystemClock
from better_ccflare.providers import (
    OAuthError,
    build_authorize_url,
    exchange_code,
    generate_pkce,
    generate_state,
    parse_code_paste,
)

from ._errors import UserError

__all__ = ["exchange_login", "login_claude_subscription"]


def login_claude_subscription(config: Config) -> tuple[str, str, str]:
    """Walk the user through the login; returns (code, state, verifier) ready to exchange."""
    pkce, state = generate_pkce(), generate_state()
    url = build_authorize_url(
        mode=OAuthMode.CLAUDE_OAUTH, client_id=config.client_id, pkce=pkce, state=state
    )
    click.echo("Open this URL, log in with the Claude account to add, and approve access:")
    click.echo(url)
    if sys.stdout.isatty():
        webbrowser.open(url)
    pasted = click.prompt("Paste the code shown after approving (it looks like CODE#STATE)")
    try:
        code = parse_code_paste(pasted, expected_state=state)
    except OAuthError as exc:
        raise UserError(str(exc)) from exc
    return code, state, pkce.verifier


async def exchange_login(config: Config, code: str, state: str, verifier: str) -> Credentials:
    """Trade the pasted code for tokens; failures become one-line errors."""
    try:
        async with httpx2.AsyncClient() as client:
            return await exchange_code(
                client,
                code=code,
                state=state,
                verifier=verifier,
                client_id=config.client_id,
                now_ms=SystemClock().now_ms(),
            )
    except OAuthError as exc:
        raise UserError(f"The login could not be completed: {exc}") from exc
