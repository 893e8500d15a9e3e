"""The better-ccflare request pipeline and the state it keeps about accounts.

This package's top level is the hot path: :class:`ProxyApp` and what it works with (the account
pool, the upstream transports, proxy API key checks, payload capture, live request events, the
usage cache and the token manager). The operator services the CLI and the management API call
are in :mod:`better_ccflare.proxy.admin`; the background jobs the server schedules are in
:mod:`better_ccflare.proxy.jobs`.
"""

from ._access_log import AccessLog
from ._account_pool import AccountPool
from ._aiohttp_transport import AiohttpTransport
from ._api_key_auth import ApiKeyAuthenticator
from ._api_key_hashing import generate_api_key, hash_api_key, looks_like_api_key, verify_api_key
from ._capacity import AccountCapacity, PoolCapacity, capacities, pool_capacity
from ._client_session import claude_session_id
from ._h1_transport import H1Transport
from ._hold import HoldPolicy
from ._key_gate import FLEET_SYNC_INTERVAL_MS, KeyGate
from ._local_answers import LOCAL_ANSWER_PATHS
from ._payloads import Payload, PayloadFormatError, decode_payload
from ._pipeline import ProxyApp, ProxyDeps, ProxySettings
from ._pool_events import (
    AccountPaused,
    AllAccountsFailed,
    CooldownEnded,
    CooldownStarted,
    CredentialsRejected,
    Failover,
    FailoverReason,
    PoolEvent,
    PoolEvents,
    RefreshFailed,
)
from ._request_events import RequestEvents, RequestListener, RequestStart, RequestTimings
from ._request_tracer import RequestTracer
from ._store_watch import STORE_WATCH_FALLBACK_MS, STORE_WATCH_INTERVAL_MS, StoreWatch
from ._token_manager import TokenManager
from ._transport import (
    Timeouts,
    UpstreamConnectError,
    UpstreamResponse,
    UpstreamTimeoutError,
    UpstreamTransport,
)
from ._usage_cache import UsageCache

__version__ = "0.1.0"

__all__ = [
    "FLEET_SYNC_INTERVAL_MS",
    "LOCAL_ANSWER_PATHS",
    "STORE_WATCH_FALLBACK_MS",
    "STORE_WATCH_INTERVAL_MS",
    "AccessLog",
    "AccountCapacity",
    "AccountPaused",
    "AccountPool",
    "AiohttpTransport",
    "AllAccountsFailed",
    "ApiKeyAuthenticator",
    "CooldownEnded",
    "CooldownStarted",
    "CredentialsRejected",
    "Failover",
    "FailoverReason",
    "H1Transport",
    "HoldPolicy",
    "KeyGate",
    "Payload",
    "PayloadFormatError",
    "PoolCapacity",
    "PoolEvent",
    "PoolEvents",
    "ProxyApp",
    "ProxyDeps",
    "ProxySettings",
    "RefreshFailed",
    "RequestEvents",
    "RequestListener",
    "RequestStart",
    "RequestTimings",
    "RequestTracer",
    "StoreWatch",
    "Timeouts",
    "TokenManager",
    "UpstreamConnectError",
    "UpstreamResponse",
    "UpstreamTimeoutError",
    "UpstreamTransport",
    "UsageCache",
    "capacities",
    "claude_session_id",
    "decode_payload",
    "generate_api_key",
    "hash_api_key",
    "looks_like_api_key",
    "pool_capacity",
    "verify_api_key",
]
