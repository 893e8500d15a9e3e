"""The running service: every component built from the configuration, under uvicorn.

:class:`Service` owns the lifetime of everything that holds a resource (the store's threads,
the upstream connection pool, background jobs) and exposes one ASGI application. Tests start
it on an ephemeral loopback port exactly as ``better-ccflare serve`` does on the configured one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
import uvicorn

from better_ccflare.core import (
    BetterCcflareError,
    Clock,
    Config,
    SessionPin,
    SystemClock,
    redacted_url,
)
from better_ccflare.database import Store, StoreClosedError
from better_ccflare.http_api import (
    Dispatcher,
    ManagementContext,
    Metrics,
    TrustedHosts,
    dashboard_handlers,
    management_app,
)
from better_ccflare.load_balancer import SessionPins, Strategy, create_strategy
from better_ccflare.logger import LogBus, configure_logging
from better_ccflare.providers import PriceTable, ProviderRegistry, builtin_providers
from better_ccflare.proxy import (
    FLEET_SYNC_INTERVAL_MS,
    STORE_WATCH_FALLBACK_MS,
    STORE_WATCH_INTERVAL_MS,
    AccessLog,
    AccountPool,
    AiohttpTransport,
    ApiKeyAuthenticator,
    H1Transport,
    HoldPolicy,
    KeyGate,
    ProxyApp,
    ProxyDeps,
    ProxySettings,
    RequestEvents,
    StoreWatch,
    Timeouts,
    TokenManager,
    UsageCache,
)
from better_ccflare.proxy.agents import AgentDirectory, AgentInterceptor
from better_ccflare.proxy.jobs import AutoRefreshScheduler, BackgroundJobs, PeriodicJob, UsagePoller

from ._http_limits import HttpLimits, limited_http_protocol
from ._live_settings import LiveConfig
from ._preflight import bind_listening_socket, prepare_data_dirs
from ._server_lock import server_lock

if TYPE_CHECKING:  # OpenTelemetry is an optional extra: imported only when tracing is on
    from opentelemetry.trace import TracerProvider

    from ._tracing import Tracing

__all__ = ["Service", "freeze_startup_heap", "serve", "uvicorn_config"]

_log = logging.getLogger("better_ccflare.server")

CONFIG_RELOAD_INTERVAL_MS = 250
ROLLUP_INTERVAL_MS = 60_000


class Service:
    """All components of one running instance. Create with :meth:`running`."""

    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        clock: Clock,
        log_bus: LogBus | None = None,
        metrics: bool = True,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """Build every component; see :meth:`running` for ``metrics`` and ``tracer_provider``.

        Raises:
            BetterCcflareError: Tracing is on and OpenTelemetry is not installed, or an
                ``OTEL_*`` variable asks for an exporter this build does not ship.
        """
        self.store = store
        self.clock = clock
        # The proxy's upstream leg runs on plain HTTP/1.1 protocols (a third of aiohttp's CPU
        # per request, docs/performance.md), with aiohttp for requests an environment proxy
        # must carry; token refresh, usage polls and OAuth use the providers' httpx2.
        self.transport = H1Transport(proxied=AiohttpTransport())
        self.http = httpx2.AsyncClient(follow_redirects=False)
        self.registry = ProviderRegistry(builtins=builtin_providers(client_id=config.client_id))
        self.pool = AccountPool(store, clock, session_duration_ms=config.session_duration_ms)
        # The session-affinity pins outlive strategy switches and are shared through the store
        # with every other instance, so a session keeps its account whichever instance serves it.
        self.pins = SessionPins(share=self._share_pin)
        self.strategy: Strategy = create_strategy(config.lb_strategy, pins=self.pins)
        self.tokens = TokenManager(
            store=store,
            registry=self.registry,
            client=self.http,
            clock=clock,
            on_update=self.pool.replace,
            events=self.pool.events,
        )
        self.usage = UsageCache(
            clock=clock, on_window_reset=self.pool.window_reset, on_headroom=self.pool.window_reset
        )
        self.auth = ApiKeyAuthenticator(store, clock)
        self.key_gate = KeyGate(store, clock)
        self.jobs = BackgroundJobs(
            store=store,
            config=config,
            clock=clock,
            poller=UsagePoller(
                accounts=self.pool.accounts,
                providers=self.registry,
                credentials_for=self.tokens.credentials_for,
                cache=self.usage,
                store=store,
                client=self.http,
                clock=clock,
                interval_ms=config.usage_poll_interval_ms,
            ),
        )
        self.settings = LiveConfig(config, self._apply_settings)
        # Accounts and keys added or edited by the CLI or another instance reach the proxy at
        # once over PostgreSQL (its change notices), within a tenth of a second over SQLite (at
        # once for a request no account could serve), and settings changed in the config file
        # (`better-ccflare strategy set`) within a quarter.
        self.store_watch = StoreWatch(store, self.pool, self.auth, clock=clock, pins=self.pins)
        self.jobs.add(
            PeriodicJob("store-watch", STORE_WATCH_INTERVAL_MS, self.store_watch.catch_up)
        )
        if store.key_fleet is not None:
            # Instances sharing the store: each re-reads the limited keys' spend and tokens,
            # which every instance writes to the request history (docs/keys.md, fleet).
            self.jobs.add(PeriodicJob("key-usage-sync", FLEET_SYNC_INTERVAL_MS, self.key_gate.sync))
        self.jobs.add(
            PeriodicJob("config-reload", CONFIG_RELOAD_INTERVAL_MS, self.settings.reload_if_changed)
        )
        # Hours of request history are summed up once they are complete, so the dashboard's
        # 7- and 30-day analytics read a few thousand rollup rows instead of a million requests.
        self.jobs.add(
            PeriodicJob(
                "analytics-rollups",
                ROLLUP_INTERVAL_MS,
                lambda: store.analytics.refresh_rollups(clock.now_ms()),
                run_at_start=True,
            ),
            fleet_wide=True,
        )
        self.request_events = RequestEvents()
        self.metrics = Metrics(
            pool=self.pool,
            usage=self.usage,
            events=self.request_events,
            store=store,
            clock=clock,
            key_gate=self.key_gate,
            key_names=self.auth.key_names,
        )
        if metrics:
            self.request_events.add_listener(self.metrics.requests.observe_request)
            self.pool.events.subscribe(self.metrics.requests.observe_pool_event)
        self._stop_access_log: Callable[[], None] | None = None
        self._use_access_log(config.access_log)
        self._flush_traces: Callable[[], object] | None = None
        self.tracing = self._tracing(config, tracer_provider)
        # Claude Code's agent files are under the user's home (HOME, so tests can move it).
        self.agents = AgentDirectory(
            Path.home(), clock, autodiscover=config.agent_workspace_autodiscover
        )
        self.auto_refresh = AutoRefreshScheduler(
            pool=self.pool,
            providers=self.registry,
            transport=self.transport,
            credentials=self.tokens,
            store=store,
            clock=clock,
        )
        # Probes send real requests upstream: one instance of a fleet sends them.
        self.jobs.add(self.auto_refresh.job, fleet_wide=True)
        self.proxy = ProxyApp(
            ProxyDeps(
                pool=self.pool,
                registry=self.registry,
                transport=self.transport,
                credentials=self.tokens,
                strategy=lambda: self.strategy,
                usage=self.usage.usage_map,
                usage_windows=self.usage.windows,
                store=store,
                clock=clock,
                auth=self.auth,
                events=self.request_events,
                agents=AgentInterceptor(self.agents, store.agent_preferences),
                settings=_proxy_settings(config),
                store_watch=self.store_watch,
                tracer=self.tracing,
                key_gate=self.key_gate,
            )
        )
        self.management = ManagementContext(
            store=store,
            pool=self.pool,
            clock=clock,
            settings=self.settings,
            registry=self.registry,
            usage=self.usage,
            auth=self.auth,
            requests=self.request_events,
            oauth_client=self.http,
            run_retention=self.jobs.run_retention,
            poll_usage=self.jobs.poller.poll_soon if self.jobs.poller else lambda _: None,
            strategy_name=lambda: self.strategy.name,
            agents=self.agents,
            log_bus=log_bus,
            log_dir=config.log_dir,
            port=config.port,
            metrics=self.metrics,
            key_gate=self.key_gate,
        )
        api = management_app(self.management, extra=dashboard_handlers())
        self.app = Dispatcher(
            proxy=self.proxy,
            app=api,
            hosts=TrustedHosts(bound_host=config.host, allowed=config.allowed_hosts),
        )

    @property
    def config(self) -> Config:
        """The configuration in force, including changes made while running."""
        return self.settings.current()

    def _apply_settings(self, old: Config, new: Config) -> None:
        """Put a changed configuration into effect where it can change without a restart:
        the strategy, payload storage, upstream timeouts, retention, the access log and trace
        context propagation (tracing itself starts and stops with the process)."""
        if new.lb_strategy != old.lb_strategy:
            self.strategy = create_strategy(new.lb_strategy, pins=self.pins)
            _log.info("Load-balancing strategy is now %s", new.lb_strategy.value)
        self.proxy.reconfigure(_proxy_settings(new))
        self.jobs.use_config(new)
        self._use_access_log(new.access_log)

    def _use_access_log(self, enabled: bool) -> None:
        """Subscribe the access log, or stop it; with it off, requests pay nothing for it."""
        if enabled and self._stop_access_log is None:
            self._stop_access_log = self.request_events.add_listener(
                AccessLog(self.pool.get).observe_request
            )
        elif not enabled and self._stop_access_log is not None:
            self._stop_access_log()
            self._stop_access_log = None

    def _tracing(self, config: Config, provider: TracerProvider | None) -> Tracing | None:
        """Spans for every request when tracing is on (or a provider is given), else None:
        then nothing of OpenTelemetry is imported and the proxy has no tracer to call."""
        if provider is None and not config.tracing:
            return None
        try:
            from ._tracing import Tracing  # noqa: PLC0415 (OpenTelemetry is an optional extra)
            from ._tracing_setup import tracer_provider_from_environment  # noqa: PLC0415
        except ImportError as exc:
            raise BetterCcflareError(
                "BETTER_CCFLARE_TRACING is on, but OpenTelemetry is not installed "
                f"({exc}). Install it with: pip install 'better-ccflare-server[otel]', or "
                "turn tracing off."
            ) from exc
        if provider is None:
            built = tracer_provider_from_environment()
            self._flush_traces = built.shutdown
            provider = built
        tracing = Tracing(provider)
        tracing.subscribe(self.pool.events, self.request_events)
        return tracing

    def _share_pin(self, session_id: str, account_id: str, expires_at_ms: int) -> None:
        pin = SessionPin(session_id=session_id, account_id=account_id, expires_at_ms=expires_at_ms)
        try:
            self.store.session_pins.save_nowait(pin, self.clock.now_ms())
        except StoreClosedError:
            return  # a request that finished while the service shut down

    @classmethod
    @asynccontextmanager
    async def running(
        cls,
        config: Config,
        *,
        clock: Clock | None = None,
        jobs: bool = True,
        log_bus: LogBus | None = None,
        metrics: bool = True,
        tracer_provider: TracerProvider | None = None,
    ) -> AsyncGenerator[Service]:
        """Open the store, load the accounts, start background jobs; undo it all on exit.

        Args:
            config: The settings.
            clock: The clock; the system's by default.
            jobs: Whether to start the background jobs (tests and benchmarks turn them off).
            log_bus: Where the dashboard's live log comes from.
            metrics: Whether requests and pool events feed ``/metrics``' counters; off only
                for the benchmark's baseline of what metrics cost (``scripts/bench``).
            tracer_provider: Export request spans with this OpenTelemetry provider (a test's);
                by default one is built from ``OTEL_*`` when ``config.tracing`` is on, and
                flushed on exit.
        """
        clock = clock or SystemClock()
        store = await Store.from_config(config, clock=clock)
        try:
            service = cls(
                config=config,
                store=store,
                clock=clock,
                log_bus=log_bus,
                metrics=metrics,
                tracer_provider=tracer_provider,
            )
        except BaseException:
            await store.close()
            raise
        try:
            await service.pool.reload()
            await service.auth.refresh()
            await service.store_watch.load_pins()
            if service.store_watch.start():
                service.jobs.jobs["store-watch"].interval_ms = STORE_WATCH_FALLBACK_MS
            if jobs:
                await service.jobs.start()
            yield service
        finally:
            await service.jobs.stop()
            await service.store_watch.stop()
            await service.tokens.aclose()
            await service.transport.aclose()
            await service.http.aclose()
            await service.pool.drain()
            await store.close()
            if service._flush_traces is not None:  # the SDK's export is blocking I/O
                await asyncio.to_thread(service._flush_traces)


def _proxy_settings(config: Config) -> ProxySettings:
    return ProxySettings(
        session_duration_ms=config.session_duration_ms,
        max_body_bytes=config.max_body_bytes,
        store_payloads=config.store_payloads,
        prices=PriceTable.from_config(config.model_prices),
        trace_propagate_upstream=config.trace_propagate_upstream,
        timeouts=Timeouts(
            connect_s=config.connect_timeout_ms / 1000,
            first_byte_s=config.first_byte_timeout_ms / 1000,
            idle_s=config.idle_timeout_ms / 1000,
        ),
        hold=HoldPolicy(
            max_wait_ms=config.hold_until_reset_ms, max_waiting=config.hold_max_waiting
        ),
    )


def uvicorn_config(config: Config, app: Dispatcher) -> uvicorn.Config:
    """uvicorn settings for the service: our logging, TLS when configured, bounded shutdown,
    and the limits every client meets before its key is checked."""
    limits = HttpLimits(
        max_connections=config.max_connections,
        max_header_bytes=config.max_header_bytes,
        max_headers=config.max_headers,
        header_timeout_s=config.header_timeout_ms / 1000,
        body_timeout_s=config.body_timeout_ms / 1000,
    )
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        http=limited_http_protocol(limits),
        ssl_keyfile=str(config.ssl_key_path) if config.ssl_key_path else None,
        ssl_certfile=str(config.ssl_cert_path) if config.ssl_cert_path else None,
        log_config=None,
        access_log=False,
        lifespan="off",
        # uvicorn counts whole seconds: a grace period is rounded up to the next second.
        timeout_graceful_shutdown=-(-config.shutdown_grace_ms // 1000),
        server_header=False,
        # Nothing reads the client's address or scheme, so uvicorn's X-Forwarded-* rewriting
        # would be a middleware layer on every request for nothing.
        proxy_headers=False,
    )


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling.

    uvicorn re-raises a captured SIGTERM once it has stopped, which would kill the process
    before the store is flushed; :func:`serve` handles the signals itself instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        yield


def _stop_on_signals(server: uvicorn.Server) -> None:
    """First SIGINT/SIGTERM: graceful stop; a second one: stop without waiting for streams."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)


_CUT_REQUESTS_WAIT_S = 5.0
"""How long the requests cut at the end of the grace period get to record themselves."""


async def _requests_cut(server: uvicorn.Server) -> None:
    """Let the requests uvicorn cancelled when the grace period ran out finish their own way
    (close the upstream, record what was seen) before the store closes under them."""
    tasks = set(server.server_state.tasks)
    if tasks:
        await asyncio.wait(tasks, timeout=_CUT_REQUESTS_WAIT_S)


def freeze_startup_heap() -> None:
    """Take everything alive once the service has started out of the cycle collector's sight.

    The framework, the app, the providers and the imported modules are a few hundred thousand
    objects that live as long as the process, and every full collection walked all of them:
    about 30 ms each, several times a minute under load. Frozen, a full collection walks only
    what was made since (the proxy benchmark's collections went from 0.24 s to 5 ms; see
    ``docs/performance.md``). The price: a frozen object that later becomes cyclic garbage is
    never freed, and nothing made at start-up is meant to die before the process.
    """
    gc.collect()
    gc.freeze()


async def serve(config: Config) -> None:
    """Run the service until interrupted (Ctrl-C or SIGTERM), then shut down cleanly.

    Shutdown stops accepting connections, gives in-flight streams the grace period
    (``shutdown_grace_ms``, 30 s by default) to finish, cuts and records those still running,
    stops the background jobs and flushes every queued database write.

    Raises:
        BetterCcflareError: The configuration, the key or the database is unusable, a data
            directory cannot be created, or the port cannot be bound.
    """
    prepare_data_dirs(config)
    sqlite_file = Store.sqlite_file(config)
    # The lock comes first: a refused second server must not touch the first one's log files.
    with server_lock(sqlite_file) if sqlite_file is not None else contextlib.nullcontext():
        bus = configure_logging(
            level=config.log_level, fmt=config.log_format, log_dir=config.log_dir
        )
        await _serve_locked(config, bus)
    _log.info("better-ccflare stopped; every queued write is flushed")


async def _serve_locked(config: Config, bus: LogBus) -> None:
    """:func:`serve`, once the database is this server's alone (SQLite) or shared (PostgreSQL)."""
    with bind_listening_socket(config) as listening:
        async with Service.running(config, log_bus=bus) as service:
            status = await service.store.schema_status()
            server = _Server(uvicorn_config(config, service.app))
            _stop_on_signals(server)
            accounts = len(service.pool.accounts())
            _log.info(
                "better-ccflare listening on %s://%s:%d: %d account(s), strategy %s, "
                "database %s (schema %d, %s)",
                "https" if config.tls_enabled else "http",
                config.host,
                config.port,
                accounts,
                service.strategy.name,
                Store.sqlite_file(config) or redacted_url(config.database_url or ""),
                status.version,
                status.backend,
            )
            url = config.local_url + "/"
            _log.info("Dashboard: %s  Claude Code: ANTHROPIC_BASE_URL=%s", url, url.rstrip("/"))
            if accounts == 0:
                _log.warning(
                    "No accounts yet: better-ccflare account add NAME --mode anthropic "
                    "(every type: better-ccflare account types)"
                )
            freeze_startup_heap()
            await server.serve(sockets=[listening])
            await _requests_cut(server)
