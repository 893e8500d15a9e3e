"""Billing type on every record, and auto-pause-on-overage acting, under a real server."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from better_ccflare.core import BillingType, PauseReason

from .support.client import ask, recorded
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import message_json
from .support.service import console_account, running_proxy

OVERAGE = {"anthropic-ratelimit-unified-overage-in-use": "true"}


async def test_an_overage_answer_pauses_an_account_that_opted_in_and_is_billed_as_overage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeUpstream() as upstream:
        upstream.enqueue(Reply.json(message_json(), headers=OVERAGE))
        upstream.set_default(Reply.json(message_json()))
        careful = msgspec.structs.replace(
            console_account("careful", upstream), auto_pause_on_overage_enabled=True
        )
        spare = console_account("spare", upstream, priority=1)
        async with running_proxy(tmp_path, careful, spare) as (service, url):
            await ask(url)  # served by "careful", in overage
            await ask(url)  # "careful" is paused now: "spare" serves
            second, first = await recorded(service, 2)
            assert (first.account_id, first.billing_type) == ("careful", BillingType.OVERAGE)
            assert (second.account_id, second.billing_type) == ("spare", BillingType.API)
            stored = await service.store.accounts.get("careful")
            assert stored is not None
            assert (stored.paused, stored.pause_reason) == (True, PauseReason.OVERAGE)
    assert any(
        getattr(r, "data", {}).get("reason") == "overage" and "paused" in r.getMessage()
        for r in caplog.records
    )


async def test_an_overage_answer_leaves_an_account_without_the_toggle_serving(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json(), headers=OVERAGE))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            await ask(url)
            await ask(url)
            rows = await recorded(service, 2)
            assert [(r.account_id, r.billing_type) for r in rows] == [
                ("a", BillingType.OVERAGE),
                ("a", BillingType.OVERAGE),
            ]
            account = service.pool.get("a")
            assert account is not None
            assert not account.paused


@pytest.mark.parametrize(
    ("headers", "setting", "expected"),
    [
        ({}, None, BillingType.API),  # a console key is billed per token
        ({"anthropic-ratelimit-unified-overage-status": "rejected"}, None, BillingType.PLAN),
        ({}, BillingType.PLAN, BillingType.PLAN),  # the account's own setting
    ],
)
async def test_every_served_request_records_its_billing_type(
    tmp_path: Path, headers: dict[str, str], setting: BillingType | None, expected: BillingType
) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json(), headers=headers))
        account = msgspec.structs.replace(console_account("a", upstream), billing_type=setting)
        async with running_proxy(tmp_path, account) as (service, url):
            await ask(url)
            [row] = await recorded(service)
            assert row.billing_type is expected
