"""``/api/oauth``: logging in to a Claude account from the dashboard.

PKCE with the paste-the-code flow: ``init`` stores the verifier in a pending session (in the
database, so any instance sharing it can finish the login) and returns the authorize URL; the
user logs in, copies ``CODE#STATE`` from the page Anthropic shows, and ``callback`` checks the
state, exchanges the code and stores the account. Re-authentication does the same for an
existing account and replaces only its tokens, keeping its id, settings and history.

The session id doubles as the OAuth ``state``: it is random, single-use and expires with the
session, which is exactly what a state must be.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import post
from litestar.params import JSONBody

from better_ccflare.core import (
    Account,
    Credentials,
    InvalidInputError,
    OAuthMode,
    OAuthSession,
    ProviderKind,
)
from better_ccflare.providers import (
    OAuthError,
    build_authorize_url,
    create_console_api_key,
    exchange_code,
    generate_pkce,
    generate_state,
    parse_code_paste,
)
from better_ccflare.proxy.admin import AccountMode, NewAccount, check_new_account

from ._account_input import (
    AccountName,
    Endpoint,
    NonBlank,
    Priority,
    add_checked,
    api_field_names,
)
from ._account_lookup import find_account
from ._account_response import AccountResponse, account_response
from ._api_context import Ctx, ManagementContext
from ._api_errors import errors

__all__ = ["OAUTH_HANDLERS"]

SESSION_TTL_MS = 10 * 60_000

_REAUTH = "reauth:"
"""Marks a pending re-login in the session's ``account_name``, followed by the account id. An
account name cannot contain ``:``, so a marked session can never be mistaken for a new account."""


class InitBody(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    name: AccountName
    mode: Annotated[
        Literal["anthropic", "claude-console-api", "claude-oauth", "max", "console"],
        msgspec.Meta(
            description="The account type to log in to: anthropic (a Claude subscription) or "
            "claude-console-api (a Console key is minted); claude-oauth, max and console are "
            "their older names"
        ),
    ] = "anthropic"
    priority: Priority = 0
    custom_endpoint: Endpoint | None = None


class ReauthInitBody(msgspec.Struct, frozen=True, rename="camel"):
    account_id: Annotated[
        NonBlank, msgspec.Meta(description="The id of the subscription account to log in again")
    ]


class InitResponse(msgspec.Struct, frozen=True, rename="camel"):
    success: Annotated[bool, msgspec.Meta(description="Always true")]
    auth_url: Annotated[str, msgspec.Meta(description="The page to open and log in on")]
    session_id: Annotated[
        str, msgspec.Meta(description="Send it back with the pasted code to finish the login")
    ]
    expires_at: Annotated[
        int, msgspec.Meta(description="When the login must be finished by (epoch ms)")
    ]


class CallbackBody(msgspec.Struct, frozen=True, rename="camel"):
    session_id: Annotated[NonBlank, msgspec.Meta(description="From the login's init response")]
    code: Annotated[
        NonBlank,
        msgspec.Meta(
            description="What the page shows after login: CODE#STATE (or that page's address)"
        ),
    ]


class CallbackResponse(msgspec.Struct, frozen=True):
    success: Annotated[bool, msgspec.Meta(description="Always true")]
    account: Annotated[
        AccountResponse, msgspec.Meta(description="The account added or logged in again")
    ]


async def _start(
    ctx: ManagementContext, *, name: str, mode: OAuthMode, priority: int, endpoint: str | None
) -> InitResponse:
    pkce, state = generate_pkce(), generate_state()
    now = ctx.clock.now_ms()
    session = OAuthSession(
        id=state,
        account_name=name,
        verifier=pkce.verifier,
        mode=mode,
        created_at_ms=now,
        expires_at_ms=now + SESSION_TTL_MS,
        custom_endpoint=endpoint,
        priority=priority,
    )
    await ctx.store.oauth_sessions.create(session)
    client_id = ctx.settings.current().client_id
    url = build_authorize_url(mode=mode, client_id=client_id, pkce=pkce, state=state)
    return InitResponse(
        success=True, auth_url=url, session_id=state, expires_at=session.expires_at_ms
    )


async def _finish(
    ctx: ManagementContext, data: JSONBody[CallbackBody], *, reauth: bool
) -> tuple[OAuthSession, Credentials]:
    """Check the pasted code against the session and exchange it; the session is then spent."""
    now = ctx.clock.now_ms()
    session = await ctx.store.oauth_sessions.get(data.session_id, now)
    if session is None:
        raise InvalidInputError(
            "sessionId", "this login is unknown or has expired; start the login again"
        )
    if session.account_name.startswith(_REAUTH) != reauth:
        expected = "/api/oauth/anthropic/reauth/callback" if not reauth else "/api/oauth/callback"
        raise InvalidInputError("sessionId", f"this login must be finished with {expected}")
    try:
        code = parse_code_paste(data.code, expected_state=session.id)
    except OAuthError as exc:
        raise InvalidInputError("code", str(exc)) from exc
    await ctx.store.oauth_sessions.delete(session.id)  # a code is single-use either way
    try:
        credentials = await exchange_code(
            ctx.oauth_client,
            code=code,
            state=session.id,
            verifier=session.verifier,
            client_id=ctx.settings.current().client_id,
            now_ms=now,
        )
    except OAuthError as exc:
        raise InvalidInputError("code", f"the login could not be completed: {exc}") from exc
    return session, credentials


@post(
    "/api/oauth/init",
    tags=["oauth"],
    responses=errors(changes=True, invalid=True),
    summary="Start a login; returns the URL to open",
    status_code=200,
)
async def oauth_init(ctx: Ctx, data: JSONBody[InitBody]) -> InitResponse:
    """Checks the new account's name, priority and endpoint now, then starts a PKCE login
    valid for 10 minutes: open ``authUrl``, log in, and send the code the page shows to
    ``POST /api/oauth/callback``."""
    console = data.mode in (AccountMode.CONSOLE, "console")
    mode = OAuthMode.CONSOLE if console else OAuthMode.CLAUDE_OAUTH
    # Check everything but the login's own result now, not after the person has logged in.
    with api_field_names():
        check_new_account(
            NewAccount(
                name=data.name,
                mode=AccountMode.CONSOLE if console else AccountMode.CLAUDE_OAUTH,
                priority=data.priority,
                endpoint=data.custom_endpoint,
            ),
            login_pending=True,
            registry=ctx.registry,
        )
    return await _start(
        ctx,
        name=data.name.strip(),
        mode=mode,
        priority=data.priority,
        endpoint=data.custom_endpoint,
    )


@post(
    "/api/oauth/callback",
    tags=["oauth"],
    responses=errors(
        changes=True, invalid=True, conflict="an account with this name exists by now"
    ),
    summary="Finish a login with the pasted code#state",
    status_code=200,
)
async def oauth_callback(ctx: Ctx, data: JSONBody[CallbackBody]) -> CallbackResponse:
    """Exchanges the code for tokens (a console login also mints an API key) and adds the
    account. A code is single-use: a refused one needs a new login."""
    session, credentials = await _finish(ctx, data, reauth=False)
    if session.mode is OAuthMode.CONSOLE:
        if credentials.access_token is None:
            raise InvalidInputError("code", "the console login returned no access token")
        try:
            key = await create_console_api_key(
                ctx.oauth_client, access_token=credentials.access_token
            )
        except OAuthError as exc:
            raise InvalidInputError("code", str(exc)) from exc
        new = NewAccount(
            name=session.account_name,
            mode=AccountMode.CONSOLE,
            priority=session.priority,
            api_key=key,
            endpoint=session.custom_endpoint,
        )
    else:
        new = NewAccount(
            name=session.account_name,
            mode=AccountMode.CLAUDE_OAUTH,
            priority=session.priority,
            credentials=credentials,
            endpoint=session.custom_endpoint,
        )
    added = await add_checked(ctx, new)
    return CallbackResponse(success=True, account=account_response(ctx, added))


async def _subscription_account(ctx: ManagementContext, account_id: str) -> Account:
    account = await find_account(ctx, account_id)
    if account.provider != ProviderKind.CLAUDE_OAUTH.value:
        raise InvalidInputError(
            "accountId", f"{account.name!r} is a {account.provider} account; it has no login"
        )
    return account


@post(
    "/api/oauth/anthropic/reauth/init",
    tags=["oauth"],
    responses=errors(changes=True, invalid=True, missing="account"),
    summary="Start a new login for an existing subscription account",
    status_code=200,
)
async def reauth_init(ctx: Ctx, data: JSONBody[ReauthInitBody]) -> InitResponse:
    """As ``POST /api/oauth/init``, for a Claude subscription account whose tokens are dead
    (``requiresReauth``); finish it with ``.../reauth/callback``."""
    account = await _subscription_account(ctx, data.account_id)
    return await _start(
        ctx,
        name=_REAUTH + account.id,
        mode=OAuthMode.CLAUDE_OAUTH,
        priority=account.priority,
        endpoint=account.custom_endpoint,
    )


@post(
    "/api/oauth/anthropic/reauth/callback",
    tags=["oauth"],
    responses=errors(changes=True, invalid=True, missing="account"),
    summary="Finish re-authentication; keeps the account's id, settings and history",
    status_code=200,
)
async def reauth_callback(ctx: Ctx, data: JSONBody[CallbackBody]) -> CallbackResponse:
    """Exchanges the code and replaces only the account's tokens; it serves again at once."""
    session, credentials = await _finish(ctx, data, reauth=True)
    account = await _subscription_account(ctx, session.account_name.removeprefix(_REAUTH))
    await ctx.store.accounts.set_credentials(account.id, credentials)
    await ctx.pool.reload()
    refreshed = await ctx.store.accounts.get(account.id)
    assert refreshed is not None
    return CallbackResponse(success=True, account=account_response(ctx, refreshed))


OAUTH_HANDLERS = [oauth_init, oauth_callback, reauth_init, reauth_callback]
