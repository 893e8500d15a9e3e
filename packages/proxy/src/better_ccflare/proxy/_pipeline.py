"""The proxy itself: one raw ASGI application for every ``/v1/*`` request.

For each request it checks the path and reads the body once (refusing, before anything goes
upstream, what it cannot forward safely: ``_request_checks``), asks the strategy for an ordered
list of accounts, and tries them in turn until one answers with something other than a rate
limit, an auth failure or a dead connection; only then does the first byte go to the client,
which is what makes failover invisible. When none can, the client gets the most informative
upstream reply (``_attempt_failures``). The chosen response is streamed through chunk by chunk,
never buffered, while the provider's usage parser reads tokens off the same bytes; if the
upstream breaks after that, the client sees a broken response, never a short complete one. The
request is recorded afterwards through the store's writer, so recording never delays the
response.

It is a raw ASGI app rather than a framework handler because it must watch for the client
hanging up while it waits for upstream headers (frameworks only notice during the body), and
because it is the hot path: every microsecond here is overhead on every request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from better_ccflare.core import (
    Account,
    ApiKey,
    ApiKeyRole,
    BetterCcflareError,
    BillingType,
    Clock,
    Credentials,
    PauseReason,
    RateLimitReason,
    RequestRecord,
    StreamTerminalState,
    UsageWindow,
)
from better_ccflare.database import Store
from better_ccflare.load_balancer import (
    AccountUsage,
    Selection,
    SelectionRequest,
    Strategy,
    is_eligible,
)
from better_ccflare.providers import (
    AccountConfigError,
    ClientRequest,
    PriceTable,
    Provider,
    ProviderRegistry,
    RateLimitInfo,
    RateLimitKind,
    ResponseTransformer,
    UnknownProviderError,
    UnsupportedRequestError,
    UpstreamRequest,
    UsageParser,
    UsageResult,
    forwardable_response_headers,
)

from ._account_pool import AccountPool
from ._anthropic_errors import ErrorReply, error_body, error_event, error_event_of
from ._api_key_auth import ApiKeyAuthenticator
from ._attempt_failures import AttemptFailures, anthropic_error_body
from ._billing import billing_type
from ._capacity import capacities, pool_capacity
from ._client_session import client_session_id
from ._control_headers import (
    FORCE_ACCOUNT_HEADER,
    ForcedAccountError,
    forced_account,
    project_of,
)
from ._cooldowns import BREAKER_REASONS, CooldownPolicy
from ._credential_source import CredentialSource
from ._hold import PING_EVENT, HoldPolicy, HoldSlots, clock_sleep
from ._key_gate import KeyGate, Ticket
from ._key_limits import Refusal
from ._key_refusals import refusal_reply
from ._local_answers import LOCAL_ANSWER_PATHS
from ._model_fallback import fallback_models, model_unavailable, pin_model
from ._payloads import PayloadCapture
from ._pool_events import AllAccountsFailed, Failover, FailoverReason
from ._request_checks import InvalidRequestError, Routing, forwardable_path, read_routing
from ._request_events import RequestEvents, RequestStart, RequestTimings
from ._request_record import request_record, time_ordered_id
from ._request_tracer import RequestTracer, client_trace_context
from ._store_watch import StoreWatch
from ._token_manager import CredentialsUnavailableError
from ._transport import (
    Timeouts,
    UpstreamConnectError,
    UpstreamResponse,
    UpstreamTimeoutError,
    UpstreamTransport,
)
from ._unavailable import describe_unavailable, unavailable_reply
from .agents import AgentInterceptor, AgentMatch

__all__ = ["ProxyApp", "ProxyDeps", "ProxySettings"]

_log = logging.getLogger("better_ccflare.proxy")
_T = TypeVar("_T")

# ASGI callables, typed loosely on purpose: servers and frameworks each have their own precise
# (and mutually incompatible) TypedDicts for the same messages.
Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]

_CUT_BY_SHUTDOWN = "cut by server shutdown"
_WAKE_MARGIN_MS = 5
"""A held request wakes this long after the moment an account frees up, so that a timer firing
a hair early does not find it still benched."""
_ERROR_BODY_LIMIT = 1024 * 1024
"""Error bodies are read before deciding (a 429's body can say which limit); real ones are a few
hundred bytes, and anything beyond this is forwarded from the stream unread."""


class ProxySettings(msgspec.Struct, frozen=True, kw_only=True):
    timeouts: Timeouts = msgspec.field(default_factory=Timeouts)
    cooldowns: CooldownPolicy = msgspec.field(default_factory=CooldownPolicy)
    session_duration_ms: int = 5 * 3_600_000
    max_body_bytes: int = 64 * 1024 * 1024
    store_payloads: bool = False
    """Keep request and response bodies (capped, credentials stripped) for the dashboard."""
    prices: PriceTable = msgspec.field(default_factory=PriceTable)
    overload_retries: int = 1
    """How many times a 529 without a reset hint is retried on the same account before failing
    over, each after a full-jitter wait of up to ``overload_retry_base_ms`` doubled per retry
    (at most ``overload_retry_max_ms``): the reference's 2 attempts, 750 ms base, 3 s cap."""
    overload_retry_base_ms: int = 750
    overload_retry_max_ms: int = 3_000
    trace_propagate_upstream: bool = False
    """Send W3C trace context upstream: the attempt's span when tracing, else the client's."""
    hold: HoldPolicy = msgspec.field(default_factory=HoldPolicy)
    """Hold-until-reset (``_hold``); off by default."""


class _ClientGoneError(Exception):
    """The client disconnected; stop work for this request."""


@dataclass(frozen=True, slots=True)
class ProxyDeps:
    """Everything the proxy works with; built once by the server."""

    pool: AccountPool
    registry: ProviderRegistry
    transport: UpstreamTransport
    credentials: CredentialSource
    strategy: Callable[[], Strategy]
    """The strategy in force (a callable, so it can be swapped at run time)."""
    usage: Callable[[], Mapping[str, AccountUsage]]
    store: Store
    clock: Clock
    settings: ProxySettings
    auth: ApiKeyAuthenticator
    """Checks proxy API keys once any active key exists."""
    events: RequestEvents | None = None
    """Where dashboards watch requests live; each recorded request is published to it."""
    store_watch: StoreWatch | None = None
    """Asked to catch up with the store when no account can serve a request: an account the
    CLI added a moment ago serves it instead of an error."""
    agents: AgentInterceptor | None = None
    """Attributes requests to Claude Code subagents and applies their model preferences."""
    tracer: RequestTracer | None = None
    """Spans for each request and each account tried; ``None`` (no tracing) costs nothing."""
    usage_windows: Callable[[str], tuple[UsageWindow, ...]] = lambda _: ()
    """An account's usage windows as last polled (``UsageCache.windows``): when no account can
    serve, the reply names the window that is used up."""
    holds: HoldSlots = dataclasses.field(default_factory=HoldSlots)
    """The requests held until an account frees up, counted across requests."""
    key_gate: KeyGate | None = None
    """Enforces the limits of keys that have any (a key without limits never reaches it)."""


class ProxyApp:
    """ASGI application that proxies a request to the pool."""

    __slots__ = ("_deps",)

    def __init__(self, deps: ProxyDeps) -> None:
        self._deps = deps

    def reconfigure(self, settings: ProxySettings) -> None:
        """Apply new settings (payload storage, timeouts) from the next request on; requests
        already in flight finish with the settings they started with."""
        self._deps = dataclasses.replace(self._deps, settings=settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path in LOCAL_ANSWER_PATHS:
            await _reply(send, 200, [("content-type", "application/json")], b'{"success":true}')
            return
        try:
            path = forwardable_path(path, scope.get("raw_path"))
        except InvalidRequestError as exc:
            await _error(send, 400, "invalid_request_error", str(exc))
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = await self._deps.auth.authenticate(headers, path)
        if not auth.allowed:
            kind = "authentication_error" if auth.status == 401 else "permission_error"
            await _error(send, auth.status, kind, auth.message)
            return
        try:
            forced = (
                await self._forced_account(headers, auth.key)
                if FORCE_ACCOUNT_HEADER in headers
                else None
            )
        except ForcedAccountError as exc:
            await _error(send, exc.status, exc.error_type, str(exc))
            return
        accepted = await self._accept(scope, receive, send, path, headers, key=auth.key)
        if accepted is None:
            return
        body, routing, agent, ticket = accepted
        exchange: _Exchange | None = None
        events = self._deps.events
        if events is not None:
            events.in_flight += 1
        try:
            exchange = _Exchange(
                self._deps,
                scope,
                path=path,
                routing=routing,
                headers=headers,
                api_key=auth.key,
                receive=receive,
                send=send,
                body=body,
                agent=agent,
                forced=forced,
                ticket=ticket,
            )
            await exchange.run()
        except Exception:
            # A bug must not reach the client as a bare server error: log it, answer in the
            # Anthropic error shape if the response has not started yet.
            _log.exception(
                "Proxying %s %s failed unexpectedly",
                scope["method"],
                path,
                extra={
                    "data": {
                        "request_id": exchange.id if exchange is not None else None,
                        "method": scope["method"],
                        "path": path,
                    }
                },
            )
            if exchange is None or not exchange.responded:
                await _error(send, 500, "api_error", "The proxy failed unexpectedly; see its log.")
        finally:
            self._request_over(exchange, ticket)

    def _request_over(self, exchange: _Exchange | None, ticket: Ticket | None) -> None:
        """Count the request out of those in flight, and end its spans and hand its key's
        admission back if no record did."""
        deps = self._deps
        if deps.events is not None:
            deps.events.in_flight -= 1
        if deps.tracer is not None and exchange is not None:
            deps.tracer.request_finished(exchange.id)
        if ticket is not None and deps.key_gate is not None:
            deps.key_gate.leave(ticket, None)  # only if no record did it already

    async def _forced_account(
        self, headers: Mapping[str, str], api_key: ApiKey | None
    ) -> Account | None:
        """The account the client forces, if any; one the CLI added a moment ago counts too.

        Raises:
            ForcedAccountError: The client may not force one, or names no account.
        """
        wanted = headers.get(FORCE_ACCOUNT_HEADER)
        if wanted is None:
            return None
        deps = self._deps
        auth_enabled = deps.auth.auth_enabled
        try:
            return forced_account(wanted, deps.pool.accounts(), api_key, auth_enabled=auth_enabled)
        except ForcedAccountError as exc:
            if exc.status != 400 or deps.store_watch is None:
                raise
            if not await deps.store_watch.catch_up():
                raise
        return forced_account(wanted, deps.pool.accounts(), api_key, auth_enabled=auth_enabled)

    async def _accept(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        headers: Mapping[str, str],
        *,
        key: ApiKey | None,
    ) -> tuple[bytes, Routing, AgentMatch | None, Ticket | None] | None:
        """Read the request, apply its agent's model, and pass it through its key's limits;
        None when the client has been answered already (or the server is stopping). One
        coroutine for all of it: this runs for every request."""
        try:
            body = await _read_body(receive, self._deps.settings.max_body_bytes)
        except asyncio.CancelledError:
            # The server stopped before the client finished sending: nothing had started yet.
            _log.info(
                "Shutdown cut %s %s while its body was still arriving",
                scope["method"],
                path,
                extra={"data": {"method": scope["method"], "path": path}},
            )
            return None
        if body is None:
            await _error(send, 413, "request_too_large", "The request body is too large.")
            return None
        try:
            routing = read_routing(body, headers.get("content-type"))
        except InvalidRequestError as exc:
            await _error(send, 400, "invalid_request_error", str(exc))
            return None
        # The agent's preferred model replaces the client's before routing sees it.
        agents = self._deps.agents
        agent = (
            None
            if agents is None or agents.finds_nothing(headers)
            else await agents.resolve(headers, body, routing)
        )
        if agent is not None:
            body, routing = agent.body, agent.routing
        gate = self._deps.key_gate
        if key is None or key.limits is None or gate is None:
            return body, routing, agent, None
        # Before any upstream call: a refused request costs the pool nothing.
        admitted = await gate.enter(key, key.limits, routing.model)
        if isinstance(admitted, Refusal):
            reply = refusal_reply(admitted, self._deps.clock.now_ms())
            await _reply(send, reply.status, list(reply.headers), reply.body)
            return None
        return body, routing, agent, admitted


class _Exchange:
    """One client request, from account selection to the recorded result."""

    __slots__ = (
        "agent",
        "api_key",
        "attempts",
        "body",
        "client_session",
        "deps",
        "failed_with",
        "failures",
        "first_byte",
        "first_delta",
        "forced",
        "headers",
        "held",
        "id",
        "method",
        "path",
        "project",
        "query",
        "receive",
        "responded",
        "routing",
        "send",
        "sent",
        "started",
        "started_ms",
        "streaming_held",
        "ticket",
        "trace_context",
        "upstream_done",
        "watcher",
    )

    # Both set just before the first account is tried.
    failures: AttemptFailures
    """Why each account tried so far could not serve, for the answer when none could."""
    failed_with: tuple[int | None, FailoverReason]
    """The last failed attempt's upstream status and reason, for the failover event."""
    watcher: _DisconnectWatcher
    """Races each long wait against the client leaving."""

    def __init__(
        self,
        deps: ProxyDeps,
        scope: Scope,
        *,
        path: str,
        routing: Routing,
        headers: dict[str, str],
        api_key: ApiKey | None,
        receive: Receive,
        send: Send,
        body: bytes,
        agent: AgentMatch | None = None,
        forced: Account | None = None,
        ticket: Ticket | None = None,
    ) -> None:
        self.deps = deps
        self.ticket = ticket
        """The key gate's admission, handed back with the request's record."""
        self.agent = agent
        self.forced = forced
        """The account ``x-better-ccflare-account-id`` forces: the only one tried."""
        self.headers = headers
        self.project = project_of(headers)
        self.api_key = api_key
        self.receive = receive
        self.send = send
        self.body = body
        self.method: str = scope["method"]
        self.path = path
        """What is forwarded: the client's path, checked and escaped again where it had escapes."""
        self.routing = routing
        self.client_session = client_session_id(routing.metadata, headers)
        self.query: str = scope.get("query_string", b"").decode("latin-1")
        self.started = time.perf_counter()
        self.started_ms = deps.clock.now_ms()
        self.id = time_ordered_id(self.started_ms)
        self.attempts = 0
        # perf_counter() of the last upstream send, of the forwarded response's headers and of
        # its end (0.0 until they happen): the upstream's share of the time, for the metrics.
        self.sent = self.first_byte = self.upstream_done = 0.0
        self.first_delta = 0.0
        """perf_counter() of the first streamed chunk holding a content delta (0.0 until one
        does, and for a reply that is not a stream): where generation time starts."""
        self.responded = False
        """Whether the response has started (set just before it does, by whoever starts it)."""
        self.held = False
        """Whether the request was held until an account freed up (``_hold``)."""
        self.streaming_held = False
        """Whether a held stream's response has started: its headers and pings are sent, so
        what follows is the upstream's events, or an ``event: error``."""
        self.trace_context: dict[str, str] | None = (
            client_trace_context(headers)
            if deps.settings.trace_propagate_upstream and deps.tracer is None
            else None
        )
        """W3C trace context headers added to what goes upstream (only if the setting allows)."""
        if deps.tracer is not None:  # last: once started, the request's spans must be ended
            deps.tracer.request_started(self.id, self.method, path, headers)

    async def run(self) -> None:
        deps = self.deps
        now = deps.clock.now_ms()
        usage = deps.usage()
        selection = self._choose(now, usage)
        if (
            not selection.order
            and self.forced is None
            and deps.store_watch
            and await deps.store_watch.catch_up()
        ):
            selection = self._select(now, usage)
        self._announce(selection)
        if not selection.order:
            held = await self._none_can_serve(now, usage)
            if held is None:
                return
            selection = held  # the hold's watcher goes on watching
        else:
            self.watcher = _DisconnectWatcher(self.receive)
        self.failures = AttemptFailures()
        events = deps.pool.events
        tracer = deps.tracer
        try:
            for account in selection.order:
                if tracer is not None:
                    context = tracer.attempt_started(self.id, account)
                    if deps.settings.trace_propagate_upstream:
                        self.trace_context = context
                if await self._try(account):
                    return
                self.attempts += 1
                if self.attempts < len(selection.order):
                    status, reason = self.failed_with
                    events.emit(
                        Failover(
                            request_id=self.id,
                            account_id=account.id,
                            account=account.name,
                            status=status,
                            reason=reason,
                        )
                    )
        except _ClientGoneError:
            self._record(None, 499, StreamTerminalState.CLIENT_DISCONNECTED, None, None)
            return
        except asyncio.CancelledError:
            # Only the server cancels a request (the client leaving is _ClientGoneError): it is
            # stopping and the grace period ran out before any upstream answered.
            _absorb_cancellation()
            await self._cut_by_shutdown()
            return
        finally:
            self.watcher.stop()
        status, reason = self.failed_with
        events.emit(
            AllAccountsFailed(
                request_id=self.id, attempts=self.attempts, status=status, reason=reason
            )
        )
        await self._all_failed()

    async def _none_can_serve(
        self, now: int, usage: Mapping[str, AccountUsage]
    ) -> Selection | None:
        """No account can serve now: hold the request until one can, when the policy allows
        and one will in time (``_hold``); else answer it. ``None`` once it is answered."""
        deps = self.deps
        if deps.settings.hold.max_wait_ms:
            held = await self._hold(now, usage)
            if held is None or held.order:
                return held
            if self.held:
                self.watcher.stop()
            now, usage = deps.clock.now_ms(), deps.usage()
        await self._unavailable(usage, now)
        return None

    def _choose(self, now: int, usage: Mapping[str, AccountUsage]) -> Selection:
        """The forced account when the client forces one, else the strategy's order."""
        if self.forced is not None:
            return self._forced_selection(now, usage)
        return self._select(now, usage)

    async def _hold(self, now: int, usage: Mapping[str, AccountUsage]) -> Selection | None:
        """Wait for an account when one frees up within the policy's wait (``_hold``).

        Returns the selection once one can serve, or an empty one when none will in time (or
        too many requests are held already); ``None`` when the request was answered meanwhile
        (the client left, or the server stopped).
        """
        deps = self.deps
        policy = deps.settings.hold
        deadline = now + policy.max_wait_ms
        back = self._back_at(now, usage)
        if back is None or back > deadline or not deps.holds.take(policy.max_waiting):
            return Selection(order=())
        self.held = True
        self.watcher = _DisconnectWatcher(self.receive)
        try:
            if self.routing.stream:
                await self._start_held_stream()
            while True:
                wait_ms = min(max(back - now, 0) + _WAKE_MARGIN_MS, policy.ping_interval_ms)
                await self.watcher.race(clock_sleep(deps.clock, wait_ms / 1000))
                if self.streaming_held:
                    await self.send(
                        {"type": "http.response.body", "body": PING_EVENT, "more_body": True}
                    )
                now, usage = deps.clock.now_ms(), deps.usage()
                selection = self._choose(now, usage)
                back = self._back_at(now, usage)
                if selection.order or back is None or back > deadline:
                    _log.info("Request %s was held %d ms", self.id, now - self.started_ms)
                    return selection
        except _ClientGoneError:
            self.watcher.stop()
            self._record(None, 499, StreamTerminalState.CLIENT_DISCONNECTED, None, None)
            return None
        except asyncio.CancelledError:
            _absorb_cancellation()
            self.watcher.stop()
            await self._cut_by_shutdown()
            return None
        finally:
            deps.holds.release()

    def _back_at(self, now: int, usage: Mapping[str, AccountUsage]) -> int | None:
        """When the first account this request may use can serve again, if anyone knows."""
        read = capacities(self._candidates(), usage, self.deps.usage_windows, now)
        return pool_capacity(read).available_at_ms

    async def _start_held_stream(self) -> None:
        """Start a held stream's response: its headers and a first ping, at once."""
        self.responded = self.streaming_held = True
        await self.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-better-ccflare-request-id", self.id.encode()),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": PING_EVENT, "more_body": True})

    def _select(self, now: int, usage: Mapping[str, AccountUsage]) -> Selection:
        deps = self.deps
        selection = deps.strategy().select(
            deps.pool.accounts(),
            SelectionRequest(
                now_ms=now,
                session_id=self.session_id(),
                usage=usage,
                session_duration_ms=deps.settings.session_duration_ms,
            ),
        )
        deps.pool.apply_selection(selection, now)
        return selection

    def _announce(self, selection: Selection) -> None:
        """Tell live dashboards the request began, with the account tried first."""
        events = self.deps.events
        if events is None or not events.subscribed:
            return
        first = selection.primary
        events.publish_start(
            RequestStart(
                id=self.id,
                timestamp_ms=self.started_ms,
                method=self.method,
                path=self.path,
                model=self.routing.model,
                account_id=first.id if first is not None else None,
            )
        )

    def _forced_selection(self, now: int, usage: Mapping[str, AccountUsage]) -> Selection:
        """Only the forced account, and only while it can serve: no strategy, no failover."""
        account = self._candidates()[0]
        if not is_eligible(account, usage.get(account.id), now):
            return Selection(order=())
        return Selection(order=(account,), reason=f"forced by {FORCE_ACCOUNT_HEADER}")

    def _candidates(self) -> tuple[Account, ...]:
        """The accounts this request may use: the forced one (as the pool has it now), or all."""
        pool = self.deps.pool
        if self.forced is None:
            return pool.accounts()
        return (pool.get(self.forced.id) or self.forced,)

    def session_id(self) -> str | None:
        """The client's session: Claude Code's session id (``_client_session``)."""
        return self.client_session

    async def _try(self, account: Account, overload_retry: int = 0, fallback: int = 0) -> bool:
        """One account's attempt; True when the client got a response from it.

        ``overload_retry`` counts the in-place retries after a 529 without a reset hint;
        ``fallback`` is the entry of the account's model list tried (``_model_fallback``).
        """
        models = fallback_models(account, self.routing.model) if account.model_mappings else ()
        sent_as = account
        if fallback and self.routing.model is not None:
            sent_as = pin_model(account, self.routing.model, models[fallback])
        prepared = await self._prepare(account, sent_as)
        if prepared is None:
            return False
        provider, request, credentials = prepared
        response = await self._send(request, account)
        if response is not None and response.status == 401 and provider.refreshes_tokens:
            await response.aclose()
            response = await self._retry_after_refresh(provider, account, credentials, sent_as)
        if response is None:
            return False
        body = _Body(response)
        error_body = None
        if response.status >= 400:
            try:
                error_body = await self.watcher.race(body.read_prefix(_ERROR_BODY_LIMIT))
            except (UpstreamConnectError, UpstreamTimeoutError) as exc:
                await response.aclose()
                self.failures.unreachable(f"{account.name}: error body cut off ({exc})", exc)
                self.failed_with = (response.status, FailoverReason.BODY_CUT)
                return False
            except _ClientGoneError:
                await response.aclose()
                raise
        upstream_headers = dict(response.headers)
        reason = self._failure_of(provider, account, response.status, upstream_headers, error_body)
        next_model = False
        if (
            models
            and reason is not FailoverReason.OUT_OF_CREDITS
            and model_unavailable(response.status, error_body, request.upstream_model)
        ):
            next_model = fallback + 1 < len(models)
            if not next_model and reason is None:
                # Every model of the list is unavailable here; another account may have one.
                reason = FailoverReason.MODEL_UNAVAILABLE
        if reason is not None or next_model:
            await response.aclose()
            again = (overload_retry, fallback + 1) if next_model else None
            if again is None and await self._overload_retry_due(account, reason, overload_retry):
                again = (overload_retry + 1, fallback)
            if again is not None:
                return await self._try(account, *again)
            self.failures.answered(
                f"{account.name}: upstream answered {response.status}",
                response.status,
                upstream_headers,
                error_body,
            )
            self.failed_with = (response.status, reason or FailoverReason.MODEL_UNAVAILABLE)
            return False
        await self._forward(
            provider, account, request, response, upstream_headers=upstream_headers, body=body
        )
        return True

    async def _prepare(
        self, account: Account, sent_as: Account
    ) -> tuple[Provider, UpstreamRequest, Credentials] | None:
        """The provider, fresh credentials and the upstream request (built for ``sent_as``, the
        account with any model fallback pinned); None to skip the account."""
        try:
            provider = self.deps.registry.get(account.provider)
            credentials = await self.watcher.race(self.deps.credentials.credentials_for(account))
            return provider, self._build(provider, sent_as, credentials), credentials
        except UnknownProviderError:
            detail = f"{account.name}: unknown provider {account.provider!r}"
            self.failures.skipped("unknown provider", detail)
            self.failed_with = (None, FailoverReason.ACCOUNT_UNUSABLE)
        except (AccountConfigError, UnsupportedRequestError) as exc:
            self.failures.skipped("account cannot serve this request", f"{account.name}: {exc}")
            self.failed_with = (None, FailoverReason.ACCOUNT_UNUSABLE)
        except BetterCcflareError as exc:
            detail = f"{account.name}: credentials unavailable ({exc})"
            self.failures.skipped("credentials unavailable", detail)
            self.failed_with = (None, FailoverReason.CREDENTIALS_UNAVAILABLE)
        return None

    async def _retry_after_refresh(
        self, provider: Provider, account: Account, rejected: Credentials, sent_as: Account
    ) -> UpstreamResponse | None:
        """After a 401: one forced token refresh, then the same account once more."""
        try:
            fresh = await self.watcher.race(self.deps.credentials.force_refresh(account, rejected))
        except BetterCcflareError as exc:
            reason = FailoverReason.CREDENTIALS_UNAVAILABLE
            if isinstance(exc, CredentialsUnavailableError) and exc.rejected:
                # Refreshing cannot give anything the upstream has not already refused.
                self._open_breaker(account, RateLimitReason.CREDENTIALS_REJECTED)
                reason = FailoverReason.CREDENTIALS_REJECTED
            detail = f"{account.name}: 401, and the token refresh failed ({exc})"
            self.failures.skipped("token refresh failed", detail)
            self.failed_with = (401, reason)
            return None
        return await self._send(self._build(provider, sent_as, fresh), account)

    def _failure_of(
        self,
        provider: Provider,
        account: Account,
        status: int,
        headers: Mapping[str, str],
        error_body: bytes | None,
    ) -> FailoverReason | None:
        """Classify the response, update the account's state, and say why to fail over (None:
        serve it). Rejected credentials open the breaker; the provider reads rate limits."""
        deps = self.deps
        now = deps.clock.now_ms()
        if status in (401, 403) and _rejects_credentials(status, error_body):
            deps.pool.apply_failure(
                account.id, RateLimitReason.CREDENTIALS_REJECTED, now, deps.settings.cooldowns
            )
            return FailoverReason.CREDENTIALS_REJECTED
        info = provider.classify_rate_limit(
            status=status, headers=headers, body=error_body, now_ms=now
        )
        deps.pool.apply_rate_limit(account.id, info, now, deps.settings.cooldowns)
        if info.kind is RateLimitKind.NONE:
            return None
        return FailoverReason(info.kind.value)

    async def _overload_retry_due(
        self, account: Account, reason: FailoverReason | None, retry: int
    ) -> bool:
        """After a 529 without a reset hint, whether to try the same account again: then wait
        the jittered backoff first (a brief overload often passes before another account's
        round trip would). A 529 that names its reset goes straight to the next account."""
        settings = self.deps.settings
        if reason is not FailoverReason.OVERLOADED or retry >= settings.overload_retries:
            return False
        current = self.deps.pool.get(account.id)
        if current is None or (
            current.rate_limit.reason is not RateLimitReason.UPSTREAM_529_OVERLOADED_NO_RESET
        ):
            return False
        ceiling_ms = min(settings.overload_retry_base_ms * 2**retry, settings.overload_retry_max_ms)
        await self.watcher.race(asyncio.sleep(_jitter() * ceiling_ms / 1000))
        return True

    def _open_breaker(self, account: Account, reason: RateLimitReason) -> None:
        deps = self.deps
        deps.pool.apply_failure(account.id, reason, deps.clock.now_ms(), deps.settings.cooldowns)

    def _build(
        self, provider: Provider, account: Account, credentials: Credentials
    ) -> UpstreamRequest:
        request = provider.build_request(
            ClientRequest(
                method=self.method,
                path=self.path,
                query=self.query,
                headers=self.headers,
                body=self.body,
            ),
            account,
            credentials,
        )
        if self.trace_context:
            request = msgspec.structs.replace(
                request, headers={**request.headers, **self.trace_context}
            )
        return request

    async def _send(self, request: UpstreamRequest, account: Account) -> UpstreamResponse | None:
        self.sent = time.perf_counter()
        try:
            return await self.watcher.race(
                self.deps.transport.send(request, self.deps.settings.timeouts)
            )
        except UpstreamTimeoutError as exc:
            self._open_breaker(account, RateLimitReason.UPSTREAM_TIMEOUT)
            self.failures.unreachable(f"{account.name}: {exc}", exc)
            self.failed_with = (None, FailoverReason.TIMEOUT)
        except UpstreamConnectError as exc:
            self._open_breaker(account, RateLimitReason.CONNECT_FAILED)
            self.failures.unreachable(f"{account.name}: connection failed ({exc})", exc)
            self.failed_with = (None, FailoverReason.CONNECT_FAILED)
        return None

    async def _forward(
        self,
        provider: Provider,
        account: Account,
        request: UpstreamRequest,
        response: UpstreamResponse,
        *,
        upstream_headers: dict[str, str],
        body: _Body,
    ) -> None:
        """Stream the chosen response to the client, then record the request. A held stream
        (its headers long sent) that gets no stream back ends with the answer as an error."""
        if self.streaming_held and not _is_stream(response.status, upstream_headers):
            await self._end_held_stream(account, request, response, body)
            return
        self.first_byte = time.perf_counter()
        transformer = provider.response_transformer(
            path=self.path, status=response.status, headers=upstream_headers, request=request
        )
        streaming = "text/event-stream" in upstream_headers.get("content-type", "")
        parser = provider.usage_parser(streaming=streaming)
        # The transport's names are lower-case already (its contract), which saves a pass.
        forwarded = forwardable_response_headers(upstream_headers, lower_case_names=True)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in forwarded.items()]
        headers.append((b"x-better-ccflare-request-id", self.id.encode()))
        billing = self._billing(account, upstream_headers)
        capture = self._capture(response.status, upstream_headers)
        terminal = StreamTerminalState.COMPLETED
        error: str | None = None
        try:
            await self._start(response.status, headers)
            if await self.watcher.race(
                self._pump(body, transformer, parser, capture, streaming=streaming)
            ):
                terminal = StreamTerminalState.RECOVERED
        except _ClientGoneError:
            terminal = StreamTerminalState.CLIENT_DISCONNECTED
        except UpstreamTimeoutError as exc:
            terminal, error = StreamTerminalState.TIMEOUT, str(exc)
        except UpstreamConnectError as exc:
            terminal, error = StreamTerminalState.UPSTREAM_CLOSED, str(exc)
        except asyncio.CancelledError:
            # The server is stopping and its grace period is over. The response is broken like
            # any other cut one (below); the record keeps what was seen so far.
            _absorb_cancellation()
            terminal, error = StreamTerminalState.INTERRUPTED, _CUT_BY_SHUTDOWN
        finally:
            self.upstream_done = time.perf_counter()
            await response.aclose()
        if terminal is StreamTerminalState.INTERRUPTED:
            _log.info(
                "Shutdown cut request %s mid-response",
                self.id,
                extra={"data": {"request_id": self.id, "account": account.name}},
            )
        result = parser.result()
        if error is not None and streaming:
            terminal, error = await self._end_cut_stream(terminal, error, result, capture)
        # A broken body that is not a stream is left unended: the server then drops the
        # connection without the body's end, so the client's HTTP library raises instead of
        # handing truncated JSON over as a whole answer.
        if result.error_type is not None and terminal is StreamTerminalState.COMPLETED:
            terminal = StreamTerminalState.UPSTREAM_ERROR
            error = result.error_type
            if streaming:
                self._bench_for_in_band_limit(account, error)
        record = self._record(
            account, response.status, terminal, result, error, request=request, billing=billing
        )
        if capture is not None:
            payload = capture.finish(
                account_id=account.id,
                timestamp_ms=record.timestamp_ms,
                success=record.success,
                streaming=streaming,
            )
            self.deps.store.requests.record_payload(record.id, payload)
        self.deps.pool.record_use(account.id, self.deps.clock.now_ms())

    def _billing(self, account: Account, upstream_headers: dict[str, str]) -> BillingType:
        """How this answer is billed; an account that opted in is paused on overage (the
        answer itself is still served)."""
        billing = billing_type(account, upstream_headers)
        if billing is BillingType.OVERAGE and account.auto_pause_on_overage_enabled:
            self.deps.pool.pause(account.id, PauseReason.OVERAGE)
        return billing

    async def _pump(
        self,
        body: _Body,
        transformer: ResponseTransformer | None,
        parser: UsageParser,
        capture: PayloadCapture | None,
        *,
        streaming: bool,
    ) -> bool:
        """Write each upstream chunk to the client as it arrives; usage is read on the side.

        Returns whether a stream that ended after its stop reason but without ``message_stop``
        was completed with one (the reference's terminal recovery): SDKs otherwise wait for
        that event and raise or hand over no final message.
        """
        send = self.send
        ended = False
        timing = streaming
        async for chunk in body.chunks():
            out = transformer.feed(chunk) if transformer is not None else chunk
            if out:
                # One substring search per chunk until the first content delta, none after.
                if timing and _CONTENT_DELTA in out:
                    self.first_delta = time.perf_counter()
                    timing = False
                parser.feed(out)
                if capture is not None:
                    capture.feed(out)
                # The last piece ends the response itself: one write fewer per request.
                ended = (
                    transformer is None
                    and body.complete()
                    and not (streaming and _lacks_message_stop(parser.result()))
                )
                await send({"type": "http.response.body", "body": out, "more_body": not ended})
        if ended:
            return False
        tail = transformer.close() if transformer is not None else b""
        if tail:
            parser.feed(tail)
        recovered = streaming and _lacks_message_stop(parser.result())
        if recovered:
            tail += _MESSAGE_STOP
        if capture is not None and tail:
            capture.feed(tail)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        return recovered

    async def _end_cut_stream(
        self,
        terminal: StreamTerminalState,
        error: str,
        result: UsageResult,
        capture: PayloadCapture | None,
    ) -> tuple[StreamTerminalState, str | None]:
        """End a stream whose upstream went away; returns how it ended, and the error if any."""
        if terminal is not StreamTerminalState.INTERRUPTED and _lacks_message_stop(result):
            # The upstream went away after the message's stop reason: only the closing event
            # is missing, so the message is whole. Complete it rather than break it.
            await self._end_stream(_MESSAGE_STOP, capture)
            return StreamTerminalState.RECOVERED, None
        await self._end_stream_with_error(terminal, error, capture)
        return terminal, error

    def _bench_for_in_band_limit(self, account: Account, error_type: str) -> None:
        """A rate-limit or overload ``event: error`` mid-stream: too late to fail over (the
        stream has started), but the next request should not meet the same limit, so bench the
        account as a 429 or 529 without a reset hint would."""
        limit = _IN_BAND_LIMITS.get(error_type)
        if limit is not None:
            deps = self.deps
            now = deps.clock.now_ms()
            deps.pool.apply_rate_limit(account.id, limit, now, deps.settings.cooldowns)

    async def _end_stream_with_error(
        self, terminal: StreamTerminalState, error: str, capture: PayloadCapture | None
    ) -> None:
        """End a stream the upstream broke with an ``event: error``, on which clients raise."""
        if terminal is StreamTerminalState.TIMEOUT:
            message = f"The upstream stopped sending ({error}); the response is incomplete."
        elif terminal is StreamTerminalState.INTERRUPTED:
            message = "The proxy shut down mid-response; the response is incomplete."
        else:
            message = "The upstream connection closed mid-response; the response is incomplete."
        await self._end_stream(error_event("api_error", message), capture)

    async def _end_stream(self, event: bytes, capture: PayloadCapture | None) -> None:
        """Send the last event of a stream whose upstream went away, ending the response."""
        if capture is not None:
            capture.feed(event)
        try:
            await self.send({"type": "http.response.body", "body": event, "more_body": False})
        except Exception:
            _log.debug("client connection closed while ending a broken stream")

    @property
    def detailed(self) -> bool:
        """Whether the client may learn the pool's accounts and their states: admins only."""
        return self.api_key is not None and self.api_key.role is ApiKeyRole.ADMIN

    async def _unavailable(
        self, usage: Mapping[str, AccountUsage], now: int, error: str | None = None
    ) -> None:
        accounts = capacities(self._candidates(), usage, self.deps.usage_windows, now)
        reply = unavailable_reply(accounts, now, detailed=self.detailed)
        if error is None:
            error = describe_unavailable(accounts)
            _log.info(
                "Request %s: %s",
                self.id,
                error,
                extra={"data": {"request_id": self.id, "status": reply.status, "reason": error}},
            )
        await self._answer(reply, error)

    async def _cut_by_shutdown(self) -> None:
        """The server stopped before any upstream answered: a retryable 503, recorded."""
        _log.info(
            "Shutdown cut request %s before an upstream answered",
            self.id,
            extra={"data": {"request_id": self.id}},
        )
        message = "The proxy is shutting down; retry the request."
        if self.streaming_held:
            await self._end_stream(error_event("overloaded_error", message), None)
        else:
            self.responded = True
            await _error(self.send, 503, "overloaded_error", message)
        self._record(None, 503, StreamTerminalState.INTERRUPTED, None, _CUT_BY_SHUTDOWN)

    async def _all_failed(self) -> None:
        deps = self.deps
        now = deps.clock.now_ms()
        usage = deps.usage()
        # The log has this already: the AllAccountsFailed pool event, emitted by run().
        summary = self.failures.summary()
        if not any(
            is_eligible(a, usage.get(a.id), now) or a.rate_limit.reason in BREAKER_REASONS
            for a in self._candidates()
        ):
            # Every account is now benched (the attempts themselves set the cooldowns): say so
            # the way an exhausted pool does, with the real reset, not as a gateway error. An
            # account the breaker benched failed rather than ran out: the attempts' own answer
            # (the best upstream reply, else a 502 or 504) says how.
            await self._unavailable(usage, now, summary)
            return
        await self._answer(self.failures.reply(detailed=self.detailed), summary)

    async def _answer(self, reply: ErrorReply, error: str) -> None:
        """Send an answer the proxy wrote itself, and record the request with ``error``; a held
        stream, whose headers are sent, gets it as the ``event: error`` that ends it."""
        if self.streaming_held:
            await self._end_stream(error_event_of(reply.body), None)
        else:
            self.responded = True
            await _reply(self.send, reply.status, list(reply.headers), reply.body)
        self._record(None, reply.status, None, None, error)

    def _capture(self, status: int, upstream_headers: dict[str, str]) -> PayloadCapture | None:
        """What keeps the bodies for the dashboard, when payloads are stored."""
        if not self.deps.settings.store_payloads:
            return None
        capture = PayloadCapture(request_headers=self.headers, request_body=self.body)
        capture.response_started(status, upstream_headers)
        return capture

    async def _start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Start the response, unless it is a held stream, whose headers are sent already."""
        if not self.streaming_held:
            self.responded = True
            await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def _end_held_stream(
        self, account: Account, request: UpstreamRequest, response: UpstreamResponse, body: _Body
    ) -> None:
        """The upstream answered a held stream with something else than a stream (an error
        the client must see): the headers are long sent, so it ends the stream as an
        ``event: error``."""
        try:
            data = await self.watcher.race(body.read_prefix(_ERROR_BODY_LIMIT))
        except (UpstreamConnectError, UpstreamTimeoutError):
            data = b""
        except _ClientGoneError:
            self._record(account, 499, StreamTerminalState.CLIENT_DISCONNECTED, None, None)
            return
        finally:
            await response.aclose()
        await self._end_stream(error_event_of(anthropic_error_body(response.status, data)), None)
        error = f"upstream answered {response.status}"
        terminal = StreamTerminalState.UPSTREAM_ERROR
        self._record(account, response.status, terminal, None, error, request=request)

    def _record(
        self,
        account: Account | None,
        status: int,
        terminal: StreamTerminalState | None,
        result: UsageResult | None,
        error: str | None,
        *,
        request: UpstreamRequest | None = None,
        billing: BillingType | None = None,
    ) -> RequestRecord:
        """Queue the request's record for the writer (never waits) and return it."""
        record = request_record(
            self,
            account,
            status,
            terminal,
            result,
            error=error,
            request=request,
            prices=self.deps.settings.prices,
            billing=billing,
        )
        self.deps.store.requests.record(record)
        ticket = self.ticket
        if ticket is not None and self.deps.key_gate is not None:
            self.deps.key_gate.leave(ticket, record)
        if self.deps.events is not None:
            self.deps.events.publish(record, self._timings())
        return record

    @property
    def generation_s(self) -> float | None:
        """Seconds from the first streamed content delta to the stream's end; ``None`` when the
        reply was not a stream with content."""
        if not self.first_delta or self.upstream_done < self.first_delta:
            return None
        return self.upstream_done - self.first_delta

    def _timings(self) -> RequestTimings:
        total = time.perf_counter() - self.started
        if not self.first_byte:
            return RequestTimings(total_s=total)
        return RequestTimings(
            total_s=total,
            upstream_first_byte_s=self.first_byte - self.sent,
            upstream_s=self.upstream_done - self.sent,
        )


class _DisconnectWatcher:
    """Notices the client hanging up at any point after its body was read.

    One task waits on ``receive()``. Each phase that can take long (credentials, waiting for
    upstream headers, pumping the body) runs through :meth:`race`. When the client leaves
    during a race, the watcher cancels the request's own task, so the phase stops where it is
    waiting (closing the upstream connection) and :meth:`race` turns that cancellation into
    :class:`_ClientGoneError`. Running the phase in the request's task, instead of a task of
    its own raced with ``asyncio.wait``, saves a task and a wait on every phase of every
    request: this is the hot path.
    """

    __slots__ = ("_gone", "_owner", "_racing", "_task")

    def __init__(self, receive: Receive) -> None:
        owner = asyncio.current_task()
        if owner is None:
            raise RuntimeError("_DisconnectWatcher must be created inside a task")
        self._owner = owner
        self._gone = False
        self._racing = False
        self._task = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        except asyncio.CancelledError:
            # stop(): end quietly. A task that ends cancelled keeps its CancelledError, whose
            # traceback holds this frame, which holds the watcher, which holds the task: a
            # reference cycle per request (and the server's request state hanging off it) that
            # only the garbage collector could free. Left to it, collections cost about 8 % of
            # the proxy's CPU under load.
            return
        self._gone = True
        if self._racing:
            self._owner.cancel()

    async def race(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run ``work`` unless the client leaves first; then raise :class:`_ClientGoneError`."""
        if self._gone:
            work.close()
            raise _ClientGoneError
        self._racing = True
        try:
            return await work
        except asyncio.CancelledError:
            if not self._gone:
                raise  # cancelled from outside (shutdown): not ours to absorb
            # Ours: undo the cancellation request so the task runs on normally.
            self._owner.uncancel()
            raise _ClientGoneError from None
        finally:
            self._racing = False

    def stop(self) -> None:
        self._task.cancel()


def _absorb_cancellation() -> None:
    """Take back the server's cancellation of this request's task, which the request handles
    itself (records, answers); the task then ends normally instead of with a traceback."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


_jitter = random.Random().random  # noqa: S311 (a backoff's jitter, not a secret)

_IN_BAND_LIMITS = {
    "rate_limit_error": RateLimitInfo(kind=RateLimitKind.ACCOUNT_QUOTA),
    "overloaded_error": RateLimitInfo(kind=RateLimitKind.OVERLOADED),
}
"""What an ``event: error`` in the middle of a stream says about the account: the reading of a
429 or 529 without a reset hint (the stream's own headers describe the window as it was when
the response started, not the limit met since)."""

_CONTENT_DELTA = b"content_block_delta"
"""Marks the chunk where a stream's generation time starts (``generation_s``)."""
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def _lacks_message_stop(result: UsageResult) -> bool:
    """A stream that reached its stop reason (and no error) but not its ``message_stop``."""
    return result.stop_reason is not None and not result.message_stopped and not result.error_type


def _is_stream(status: int, headers: Mapping[str, str]) -> bool:
    return status == 200 and "text/event-stream" in headers.get("content-type", "")


_CREDENTIAL_ERRORS = (b'"authentication_error"', b'"permission_error"')


def _rejects_credentials(status: int, error_body: bytes | None) -> bool:
    """A 401, or a 403 whose error type says authentication or permission: the account's
    credentials are refused (a 403 about billing, or anything else, is not)."""
    if status == 401:
        return True
    body = error_body or b""
    return any(kind in body for kind in _CREDENTIAL_ERRORS)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


class _Body:
    """An upstream body that may be peeked at (an error's first bytes, to classify it) and
    then forwarded whole: the prefix first, then the rest from the same iterator."""

    __slots__ = ("_iterator", "_live", "_prefix", "_response")

    def __init__(self, response: UpstreamResponse) -> None:
        self._response = response
        self._iterator = response.aiter_raw()
        self._prefix: list[bytes] = []
        self._live = False

    async def read_prefix(self, limit: int) -> bytes:
        """Read until at least ``limit`` bytes (or the end); they are replayed by :meth:`chunks`."""
        size = 0
        async for chunk in self._iterator:
            self._prefix.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(self._prefix)

    async def chunks(self) -> AsyncIterator[bytes]:
        for chunk in self._prefix:
            yield chunk
        self._live = True
        async for chunk in self._iterator:
            yield chunk

    def complete(self) -> bool:
        """Whether the chunk just yielded was the body's last (never said while replaying the
        prefix, which only error bodies have)."""
        return self._live and self._response.complete()


async def _reply(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _error(send: Send, status: int, error_type: str, message: str) -> None:
    body = error_body(error_type, message)
    await _reply(send, status, [("content-type", "application/json")], body)
