"""What requests cost, as the management API reports it, under the real server.

Prices come from the bundled table and from the config file's ``model_prices``; a request for
a model neither knows has an unknown cost (``null``), and the totals say how many such requests
they leave out, instead of counting them as $0.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import message_json
from .support.service import console_account, running_proxy

# message_json's usage: 12 input, 5 output and 100 cache-read tokens.
HOUSE_PRICE = {"input": 2.0, "output": 10.0, "cache_read": 0.5}


def reply_from(model: str) -> Reply:
    return Reply.json({**message_json(), "model": model})


async def send(client: httpx2.AsyncClient, model: str) -> None:
    body = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}
    assert (await client.post("/v1/messages", json=body)).status_code == 200


async def test_costs_use_the_config_files_prices_and_say_unknown_without_one(
    tmp_path: Path,
) -> None:
    config_file = tmp_path / "xdg" / "better-ccflare" / "better-ccflare.json"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(json.dumps({"model_prices": {"house-model": HOUSE_PRICE}}))
    async with FakeUpstream() as upstream:
        upstream.enqueue(reply_from("house-model"), reply_from("mystery-model"))
        async with (
            running_proxy(tmp_path, console_account("a", upstream)) as (service, url),
            httpx2.AsyncClient(base_url=url, timeout=10) as client,
        ):
            await send(client, "house-model")
            await send(client, "mystery-model")
            await service.store.flush()

            rows = {r["model"]: r for r in (await client.get("/api/requests")).json()}
            stats = (await client.get("/api/stats")).json()
            analytics = (await client.get("/api/analytics?range=24h")).json()

    house = (12 * 2.0 + 5 * 10.0 + 100 * 0.5) / 1e6
    assert rows["house-model"]["costUsd"] == pytest.approx(house)
    assert rows["mystery-model"]["costUsd"] is None
    assert stats["totalCostUsd"] == pytest.approx(house)
    assert stats["unpricedRequests"] == 1
    assert analytics["totals"]["totalCostUsd"] == pytest.approx(house)
    assert analytics["totals"]["unpricedRequests"] == 1
    by_model = {c["model"]: c for c in analytics["costByModel"]}
    assert (
        by_model["mystery-model"]["unpricedRequests"],
        by_model["mystery-model"]["requests"],
    ) == (
        1,
        1,
    )
    assert by_model["house-model"]["unpricedRequests"] == 0
