"""What the JSON log says about requests, end to end: the real service against the fake
upstream, its log file read back line by line and parsed as JSON, as a log shipper would."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from better_ccflare.core import ApiKeyRole, LogFormat, LogLevel
from better_ccflare.logger import LOG_FILE_NAME, configure_logging, reset_logging
from better_ccflare.server import Service

from .support.client import add_api_key, ask, recorded, sdk
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json, quota_429
from .support.service import console_account, running_proxy


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    """Where the service's JSON log goes; logging is as the process had it afterwards."""
    reset_logging()
    yield tmp_path / "logs"
    reset_logging()


@asynccontextmanager
async def with_access_log(tmp_path: Path) -> AsyncGenerator[tuple[Service, str]]:
    """The service with the access log on and one account that answers every request."""
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        account = console_account("a", upstream)
        async with running_proxy(tmp_path, account, BETTER_CCFLARE_ACCESS_LOG="true") as served:
            yield served


def log_lines(log_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (log_dir / LOG_FILE_NAME).read_text().splitlines()]


def data_of(line: dict[str, Any]) -> dict[str, Any]:
    return line.get("data") or {}


def of_type(lines: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [data_of(line) for line in lines if data_of(line).get("type") == kind]


def access_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == "better_ccflare.access"]


async def test_a_failover_is_logged_once_per_event_as_json_fields_with_every_outlet_on(
    tmp_path: Path, log_dir: Path
) -> None:
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=log_dir, console=False)
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    async with FakeUpstream() as upstream:
        accounts = (console_account("a", upstream), console_account("b", upstream))
        async with running_proxy(
            tmp_path, *accounts, tracer_provider=tracing, BETTER_CCFLARE_ACCESS_LOG="true"
        ) as (service, url):
            upstream.enqueue(quota_429(int(time.time()) + 3600), Reply.json(message_json()))
            await ask(url)
            [record] = await recorded(service)

    lines = log_lines(log_dir)
    # Metrics, tracing and the access log all listen to the pool's events; only the log
    # writes them, once each.
    [failover] = of_type(lines, "failover")
    assert failover == {
        "type": "failover",
        "request_id": record.id,
        "account_id": "a",
        "account": "a",
        "status": 429,
        "reason": "account_quota",
    }
    [cooldown] = of_type(lines, "cooldown_started")
    assert cooldown["account"] == "a"
    assert cooldown["reason"] == "upstream_429_with_reset"
    [access] = access_lines(lines)
    assert access["level"] == "INFO"
    assert access["ts"].endswith("Z")
    assert access["msg"].startswith("POST /v1/messages 200 ")
    data = access["data"]
    assert data["duration_ms"] > 0
    assert data == {
        "request_id": record.id,
        "method": "POST",
        "path": "/v1/messages",
        "status": 200,
        "duration_ms": data["duration_ms"],
        "account": "b",
        "model": MODEL,
        "key_name": None,
        "failovers": 1,
        "input_tokens": 12,
        "output_tokens": 5,
        "error": None,
    }
    text = (log_dir / LOG_FILE_NAME).read_text()
    assert "sk-ant-api03-a" not in text
    assert "sk-ant-api03-b" not in text


async def test_the_access_log_names_the_key_and_never_shows_it(
    tmp_path: Path, log_dir: Path
) -> None:
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=log_dir, console=False)
    async with with_access_log(tmp_path) as (service, url):
        key = await add_api_key(service, ApiKeyRole.API_ONLY)
        async with sdk(url, api_key=key) as client:
            await client.messages.create(
                model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
            )
        await recorded(service)

    [access] = access_lines(log_lines(log_dir))
    assert access["data"]["key_name"] == "api-only"
    assert key not in (log_dir / LOG_FILE_NAME).read_text()


async def test_the_access_log_is_written_whatever_the_log_level(
    tmp_path: Path, log_dir: Path
) -> None:
    configure_logging(level=LogLevel.WARN, fmt=LogFormat.JSON, log_dir=log_dir, console=False)
    async with with_access_log(tmp_path) as (service, url):
        await ask(url)
        await ask(url)
        rows = await recorded(service, 2)

    lines = log_lines(log_dir)
    assert {line["data"]["request_id"] for line in access_lines(lines)} == {r.id for r in rows}
    assert all(line["level"] != "INFO" for line in lines if line not in access_lines(lines))


async def test_the_access_log_is_off_by_default(tmp_path: Path, log_dir: Path) -> None:
    configure_logging(level=LogLevel.DEBUG, fmt=LogFormat.JSON, log_dir=log_dir, console=False)
    async with FakeUpstream() as upstream:  # no setting given: the default
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            await ask(url)
            await recorded(service)

    assert access_lines(log_lines(log_dir)) == []


async def test_a_request_nothing_could_serve_is_logged_with_its_id_status_and_reason(
    tmp_path: Path, log_dir: Path
) -> None:
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=log_dir, console=False)
    async with running_proxy(tmp_path) as (service, url):
        with pytest.raises(anthropic.APIStatusError, match="503"):
            await ask(url)
        [record] = await recorded(service)

    [line] = [line for line in log_lines(log_dir) if data_of(line).get("request_id")]
    assert line["data"] == {
        "request_id": record.id,
        "status": 503,
        "reason": record.error_message,
    }


async def test_the_access_log_follows_the_config_file_while_running(
    tmp_path: Path, log_dir: Path
) -> None:
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=log_dir, console=False)
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            await ask(url)
            await service.settings.update({"access_log": True})
            await ask(url)
            await service.settings.update({"access_log": False})
            await ask(url)
            first, logged, last = reversed(await recorded(service, 3))

    assert [line["data"]["request_id"] for line in access_lines(log_lines(log_dir))] == [logged.id]
    assert first.timestamp_ms <= logged.timestamp_ms <= last.timestamp_ms
