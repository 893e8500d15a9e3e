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
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import uvicorn

from better_ccflare.core import Clock, Config, SystemClock
from better_ccflare.database import Store
from better_ccflare.http_api import (
    Dispatcher,
    ManagementContext,
    Metrics,
    TrustedHosts,
    dashboard_handlers,
    management_app,
)
from better_ccflare.load_balancer import Strategy, create_strategy
from better_ccflare.logger import LogBus, configure_logging
from better_ccflare.providers import PriceTable, ProviderRegistry, builtin_providers
from better_ccflare.proxy import (
    FLEET_SYNC_INTERVAL_MS,
    STORE_WATCH_INTERVAL_MS,
    AccountPool,
    AiohttpTransport,
    ApiKeyAuthenticator,
    H1Transport,
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

__all__ = ["Service", "freeze_startup_heap", "serve", "uvicorn_config"]

_log = logging.getLogger("better_ccflare.server")

CONFIG_RELOAD_INTERVAL_MS = 250
ROLLUP_INTERVAL_MS = 60_000


class Service:
    """All components of one running instance. Create with :meth:`running`."""

    def __init__(
        self, *, config: Config, store: Store, clock: Clock, log_bus: LogBus | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        # The proxy's upstream leg runs on plain HTTP/1.1 protocols (a third of aiohttp's CPU
        # per request, docs/performance.md), with aiohttp for requests an environment proxy
        # must carry; token refresh, usage polls and OAuth use the providers' httpx2.
        self.transport = H1Transport(proxied=AiohttpTransport())
        self.http = httpx2.AsyncClient(follow_redirects=False)
        self.registry = ProviderRegistry(builtins=builtin_providers(client_id=config.client_id))
        self.pool = AccountPool(store, clock, session_duration_ms=config.session_duration_ms)
        self.strategy: Strategy = create_strategy(config.lb_strategy)
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
        # Accounts and keys added or edited by the CLI or another process reach the proxy within
        # a tenth of a second (at once for a request no account could serve), and settings
        # changed in the config file (`better-ccflare strategy set`) within a quarter.
        self.store_watch = StoreWatch(store, self.pool, self.auth)
        self.jobs.jobs["store-watch"] = PeriodicJob(
            "store-watch", STORE_WATCH_INTERVAL_MS, self.store_watch.catch_up
        )
        if store.key_fleet is not None:
            # Instances sharing the store: each re-reads the limited keys' spend and tokens,
            # which every instance writes to the request history (docs/keys.md, fleet).
            self.jobs.jobs["key-usage-sync"] = PeriodicJob(
                "key-usage-sync", FLEET_SYNC_INTERVAL_MS, self.key_gate.sync
            )
        self.jobs.jobs["config-reload"] = PeriodicJob(
            "config-reload", CONFIG_RELOAD_INTERVAL_MS, self.settings.reload_if_changed
        )
        # Hours of request history are summed up once they are complete, so the dashboard's
        # 7- and 30-day analytics read a few thousand rollup rows instead of a million requests.
        self.jobs.jobs["analytics-rollups"] = PeriodicJob(
            "analytics-rollups",
            ROLLUP_INTERVAL_MS,
            lambda: store.analytics.refresh_rollups(clock.now_ms()),
            run_at_start=True,
        )
        self.request_events = RequestEvents()
        self.metrics = Metrics(
            pool=self.pool, usage=self.usage, events=self.request_events, store=store, clock=clock
        )
        self.request_events.add_listener(self.metrics.requests.observe_request)
        self.pool.events.subscribe(self.metrics.requests.observe_pool_event)
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
        self.proxy = ProxyApp(
            ProxyDeps(
                pool=self.pool,
                registry=self.registry,
                transport=self.transport,
                credentials=self.tokens,
                strategy=lambda: self.strategy,
                usage=self.usage.usage_map,
                store=store,
                clock=clock,
                auth=self.auth,
                events=self.request_events,
                agents=AgentInterceptor(self.agents, store.agent_preferences),
                settings=_proxy_settings(config),
                store_watch=self.store_watch,
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
        the strategy, payload storage, upstream timeouts and retention."""
        if new.lb_strategy != old.lb_strategy:
            self.strategy = create_strategy(new.lb_strategy)
            _log.info("Load-balancing strategy is now %s", new.lb_strategy.value)
        self.proxy.reconfigure(_proxy_settings(new))
        self.jobs.use_config(new)

    @classmethod
    @asynccontextmanager
    async def running(
        cls,
        config: Config,
        *,
        clock: Clock | None = None,
        jobs: bool = True,
        log_bus: LogBus | None = None,
    ) -> AsyncGenerator[Service]:
        """Open the store, load the accounts, start background jobs; undo it all on exit."""
        clock = clock or SystemClock()
        store = await Store.from_config(config, clock=clock)
        service = cls(config=config, store=store, clock=clock, log_bus=log_bus)
        try:
            await service.pool.reload()
            await service.auth.refresh()
            if jobs:
                await service.jobs.start()
                service.auto_refresh.start()
            yield service
        finally:
            await service.auto_refresh.stop()
            await service.jobs.stop()
            await service.tokens.aclose()
            await service.transport.aclose()
            await service.http.aclose()
            await service.pool.drain()
            await store.close()


def _proxy_settings(config: Config) -> ProxySettings:
    return ProxySettings(
        session_duration_ms=config.session_duration_ms,
        max_body_bytes=config.max_body_bytes,
        store_payloads=config.store_payloads,
        prices=PriceTable.from_config(config.model_prices),
        timeouts=Timeouts(
            connect_s=config.connect_timeout_ms / 1000,
            first_byte_s=config.first_byte_timeout_ms / 1000,
            idle_s=config.idle_timeout_ms / 1000,
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
    bus = configure_logging(level=config.log_level, fmt=config.log_format, log_dir=config.log_dir)
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
                config.db_path,
                status.version,
                status.backend,
            )
            url = _local_url(config)
            _log.info("Dashboard: %s  Claude Code: ANTHROPIC_BASE_URL=%s", url, url.rstrip("/"))
            if accounts == 0:
                _log.warning(
                    "No accounts yet: better-ccflare account add NAME --mode claude-oauth "
                    "(every type: better-ccflare account types)"
                )
            freeze_startup_heap()
            await server.serve(sockets=[listening])
            await _requests_cut(server)
    _log.info("better-ccflare stopped; every queued write is flushed")


def _local_url(config: Config) -> str:
    """The address to open on this machine: a wildcard bind is reached through loopback."""
    scheme = "https" if config.tls_enabled else "http"
    wildcards = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - binds nothing
    host = wildcards.get(config.host, config.host)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{config.port}/"
