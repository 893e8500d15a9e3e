"""The metrics' pure parts: pool events to counters, bounded labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from better_ccflare.http_api import ModelLabels, RequestMetrics
from better_ccflare.proxy import (
    AllAccountsFailed,
    CooldownEnded,
    CooldownStarted,
    CredentialsRejected,
    Failover,
    FailoverReason,
)


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
        request_id="r", account_id="1", account="work", status=None, reason=FailoverReason.TIMEOUT
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
    metrics.observe_pool_event(
        CooldownEnded(account_id="1", account="work", reason=None, cause="expired")
    )  # not counted
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
