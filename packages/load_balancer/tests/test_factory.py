"""Choosing a strategy by its configured name."""

from __future__ import annotations

import pytest

from better_ccflare.core import StrategyName
from better_ccflare.load_balancer import (
    LeastUsedStrategy,
    SessionAffinityStrategy,
    SessionDrainSoonestStrategy,
    SessionStrategy,
    Strategy,
    create_strategy,
)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (StrategyName.SESSION, SessionStrategy),
        (StrategyName.LEAST_USED, LeastUsedStrategy),
        (StrategyName.SESSION_AFFINITY, SessionAffinityStrategy),
        (StrategyName.SESSION_DRAIN_SOONEST, SessionDrainSoonestStrategy),
    ],
    ids=str,
)
def test_each_configured_name_builds_its_strategy(name: StrategyName, kind: type[Strategy]) -> None:
    strategy = create_strategy(name)
    assert type(strategy) is kind
    assert strategy.name is name


def test_every_call_builds_a_fresh_instance_with_empty_memory() -> None:
    assert create_strategy(StrategyName.LEAST_USED) is not create_strategy(StrategyName.LEAST_USED)


def test_the_config_value_selects_a_strategy() -> None:
    assert create_strategy(StrategyName("session-drain-soonest")).name == "session-drain-soonest"
