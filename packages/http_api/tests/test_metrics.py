"""The metrics' pure parts: pool events to counters, bounded labels, account states."""

from __future__ import annotations

from enum import StrEnum

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from better_ccflare.core import Account, RateLimitState
from better_ccflare.http_api import ModelLabels, RequestMetrics, account_state


# The shapes of better_ccflare.proxy's pool events (tagged msgspec structs), built here so the
# counting is specified independently of where the events are emitted.
class _Reason(StrEnum):
    TIMEOUT = "timeout"


class Failover(msgspec.Struct, frozen=True, kw_only=True, tag="failover"):
    request_id: str
    account_id: str
    account: str
    status: int | None
    reason: _Reason


class CooldownStarted(msgspec.Struct, frozen=True, kw_only=True, tag="cooldown_started"):
    account_id: str
    account: str
    reason: str | None
    until_ms: int
    failures: int


class CredentialsRejected(msgspec.Struct, frozen=True, kw_only=True, tag="credentials_rejected"):
    account_id: str
    account: str
    probe_at_ms: int
    failures: int


class AllAccountsFailed(msgspec.Struct, frozen=True, kw_only=True, tag="all_accounts_failed"):
    request_id: str
    attempts: int


class CooldownEnded(msgspec.Struct, frozen=True, kw_only=True, tag="cooldown_ended"):
    account_id: str
    account: str


def _samples(metrics: RequestMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_pool_events_count_failovers_cooldowns_and_rejections_by_account_and_reason() -> None:
    metrics = RequestMetrics(lambda _: None)
    failover = Failover(
        request_id="r", account_id="1", account="work", status=None, reason=_Reason.TIMEOUT
    )
    metrics.observe_pool_event(failover)
    metrics.observe_pool_event(failover)
    metrics.observe_pool_event(
        CooldownStarted(account_id="1", account="work", reason=None, until_ms=5, failures=3)
    )
    metrics.observe_pool_event(
        CredentialsRejected(account_id="1", account="work", probe_at_ms=0, failures=1)
    )
    metrics.observe_pool_event(AllAccountsFailed(request_id="r", attempts=2))
    metrics.observe_pool_event(CooldownEnded(account_id="1", account="work"))  # not counted
    samples = _samples(metrics)
    work = ("account", "work")
    assert samples[("better_ccflare_failovers_total", (work, ("reason", "timeout")))] == 2
    assert samples[("better_ccflare_cooldowns_started_total", (work, ("reason", "unknown")))] == 1
    assert samples[("better_ccflare_credentials_rejected_total", (work,))] == 1
    assert samples[("better_ccflare_all_accounts_failed_total", ())] == 1


def test_model_labels_drop_release_dates_and_stop_at_the_limit() -> None:
    labels = ModelLabels(limit=2)
    assert labels("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"
    assert labels("claude-sonnet-4-5") == "claude-sonnet-4-5"
    assert labels(None) == "unknown"
    assert labels("made-up") == "other"
    assert labels("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"


def test_an_account_is_in_exactly_one_state_the_most_urgent_first() -> None:
    account = Account(id="1", name="work", provider="console", created_at_ms=0)
    assert account_state(account, 0) == "ready"
    cooling = msgspec.structs.replace(account, rate_limit=RateLimitState(limited_until_ms=10))
    assert account_state(cooling, 0) == "cooling"
    assert account_state(msgspec.structs.replace(cooling, requires_reauth=True), 0) == (
        "needs_relogin"
    )
    paused = msgspec.structs.replace(cooling, requires_reauth=True, paused=True)
    assert account_state(paused, 0) == "paused"
