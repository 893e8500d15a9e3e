"""Schemathesis against the served OpenAPI schema: no server error, no response off-schema.

The real service runs under uvicorn on 127.0.0.1 in a thread of its own (schemathesis calls it
synchronously), with one account and an admin API key so that every call is authorised and
the generated inputs reach the handlers. Every operation in the schema is exercised except the
two Server-Sent-Events routes, which never end by design; ``test_management_api`` covers them.

Positive cases run every default check except ``positive_data_acceptance``: the schema states
types and bounds, but some rules live only in the server (a name already taken, a model mapping
to an empty model name inside a nested list, which Litestar's schema does not carry), and those
inputs rightly get a 400 or 409 that the check would count as a failure. Negative cases (inputs
the schema rules out: a ``0`` for a boolean, an empty name, a negative ``before``) must be
refused with a 4xx and never cause a 5xx. A method a path does not have gets 405 with ``Allow``.
Examples are few and derandomised, so a run is quick and repeatable.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks
from schemathesis.generation import GenerationMode

from better_ccflare.core import Account, ApiKeyRole, Credentials, ProviderKind, load_config
from better_ccflare.proxy.admin import create_api_key
from better_ccflare.server import Service

from .support.service import serving

STREAMS = ("/api/requests/stream", "/api/logs/stream")


class _LiveService:
    """The service on its own event loop in a daemon thread."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ready = threading.Event()
        self.url = ""
        self.admin_key = ""
        self._stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        config = load_config({"XDG_CONFIG_HOME": str(self.data_dir / "xdg")}, cwd=self.data_dir)
        async with Service.running(config, jobs=False) as service:
            await service.store.accounts.add(
                Account(
                    id="alpha",
                    name="alpha",
                    provider=ProviderKind.CONSOLE.value,
                    created_at_ms=0,
                    credentials=Credentials(api_key="sk-ant-api03-alpha"),
                )
            )
            _, self.admin_key = await create_api_key(
                service.store, "schema", ApiKeyRole.ADMIN, now_ms=0
            )
            service.auth.invalidate()  # the key applies from the first request on
            await service.pool.reload()
            async with serving(service.app) as self.url:
                self.ready.set()
                await asyncio.to_thread(self._stop.wait)

    def __enter__(self) -> _LiveService:
        self.thread.start()
        assert self.ready.wait(30), "the service did not start within 30 s"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Generator[_LiveService]:
    with _LiveService(tmp_path_factory.mktemp("schema")) as service:
        yield service


def test_management_api_honours_its_schema(live: _LiveService) -> None:
    # schemathesis is only partly typed; its objects are handled as Any here.
    schema: Any = schemathesis.openapi.from_url(f"{live.url}/schema/openapi.json")
    headers = {"x-api-key": live.admin_key}
    tested: list[str] = []
    for result in schema.get_all_operations():
        operation: Any = result.ok()
        if operation.path in STREAMS:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def check(case: Any) -> None:
            case.call_and_validate(
                headers=headers, excluded_checks=[checks.positive_data_acceptance]
            )

        check()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) >= 40, tested


def test_management_api_refuses_what_its_schema_rules_out(live: _LiveService) -> None:
    schema: Any = schemathesis.openapi.from_url(f"{live.url}/schema/openapi.json")
    headers = {"x-api-key": live.admin_key}
    negative_checks: list[Any] = [checks.not_a_server_error, checks.negative_data_rejection]  # pyright: ignore[reportUnknownMemberType]
    tested: list[str] = []
    for result in schema.get_all_operations():
        operation: Any = result.ok()
        if operation.path in STREAMS:
            continue

        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        @settings(
            max_examples=15,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=negative_checks)

        try:
            check()
        except Unsatisfiable:
            continue  # no input of this operation can be wrong (no parameters, no body)
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) >= 25, tested


async def test_a_method_a_path_lacks_gets_405_naming_the_allowed_ones(live: _LiveService) -> None:
    async with httpx2.AsyncClient(
        base_url=live.url, headers={"x-api-key": live.admin_key}
    ) as client:
        paths = (await client.get("/schema/openapi.json")).json()["paths"]
        for path, operations in paths.items():
            if "{" in path:
                continue
            declared = {method.upper() for method in operations}
            missing = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m not in declared)
            response = await client.request(missing, path)
            assert response.status_code == 405, (missing, path)
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert declared <= allowed, (path, allowed)


async def test_the_schema_states_the_bounds_the_server_enforces(live: _LiveService) -> None:
    async with httpx2.AsyncClient(base_url=live.url) as client:
        schema = (await client.get("/schema/openapi.json")).json()
    bodies = schema["components"]["schemas"]
    retention = bodies["RetentionBody"]["properties"]
    assert retention["requestDays"]["minimum"] == retention["payloadDays"]["minimum"] == 1
    assert bodies["CreateBody"]["properties"]["name"]["minLength"] == 1
    assert bodies["CallbackBody"]["properties"]["code"]["minLength"] == 1
    requests = schema["paths"]["/api/requests"]["get"]["parameters"]
    assert next(p for p in requests if p["name"] == "before")["schema"]["minimum"] == 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/config/retention", {"storePayloads": 0}, "storePayloads"),
        ("/api/config/retention", {"requestDays": "5"}, "requestDays"),
        ("/api/config/retention", {"requestDays": 0}, "requestDays"),
        ("/api/accounts/alpha/auto-fallback", {"enabled": 1}, "enabled"),
        ("/api/api-keys", {"name": ""}, "name"),
    ],
)
async def test_a_body_of_loosely_right_types_is_refused(
    live: _LiveService, path: str, body: dict[str, object], field: str
) -> None:
    async with httpx2.AsyncClient(
        base_url=live.url, headers={"x-api-key": live.admin_key}
    ) as client:
        response = await client.post(path, json=body)
        assert response.status_code == 400, response.text
        assert response.json()["field"] == field


async def _schema(live: _LiveService) -> dict[str, Any]:
    async with httpx2.AsyncClient(base_url=live.url) as client:
        return (await client.get("/schema/openapi.json")).json()


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


async def test_every_operation_has_a_tag_a_summary_and_a_description(live: _LiveService) -> None:
    schema = await _schema(live)
    declared = {tag["name"] for tag in schema["tags"]}
    assert all(tag.get("description") for tag in schema["tags"])
    for method, path, operation in _operations(schema):
        where = f"{method} {path}"
        [tag] = operation["tags"]
        assert tag in declared, where
        assert operation.get("summary"), where
        assert len(operation.get("description", "")) > 20, where
    used = {operation["tags"][0] for _, _, operation in _operations(schema)}
    assert used == declared


async def test_every_schema_property_and_parameter_has_a_description(live: _LiveService) -> None:
    schema = await _schema(live)
    missing = [
        f"{name}.{prop}"
        for name, body in schema["components"]["schemas"].items()
        for prop, spec in body.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert missing == []
    query = [
        f"{method} {path} {parameter['name']}"
        for method, path, operation in _operations(schema)
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and not parameter.get("description")
    ]
    assert query == []


async def test_the_api_takes_a_proxy_key_in_either_header_and_health_takes_none(
    live: _LiveService,
) -> None:
    schema = await _schema(live)
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "apiKey", "in": "header"}
    assert schemes["apiKey"]["name"] == "x-api-key"
    assert schemes["bearer"]["type"] == "http"
    assert schemes["bearer"]["scheme"] == "bearer"
    for method, path, operation in _operations(schema):
        if path.startswith("/api/"):
            assert operation["security"] == [{"apiKey": []}, {"bearer": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
        else:
            assert "security" not in operation, (method, path)
            assert "401" not in operation["responses"], (method, path)


async def test_each_operation_lists_only_the_errors_it_can_give(live: _LiveService) -> None:
    schema = await _schema(live)
    for method, path, operation in _operations(schema):
        responses = operation["responses"]
        errors = {code for code in responses if int(code) >= 400}
        for code in errors - {"503"}:
            body = responses[code]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, code)
        takes_input = "requestBody" in operation or any(
            p["in"] == "query" for p in operation.get("parameters", [])
        )
        # Litestar's own 400 (for any parameter, a path segment included) is not served.
        assert ("400" in errors) == takes_input, (method, path)
        # The dispatcher refuses a body that is not JSON on every state-changing method.
        assert ("415" in errors) == (method in {"POST", "PUT", "PATCH", "DELETE"}), (method, path)
    accounts = schema["paths"]["/api/accounts"]["get"]["responses"]
    assert set(accounts) == {"200", "401", "403"}
    one = schema["paths"]["/api/accounts/{account_id}"]["get"]["responses"]
    assert set(one) == {"200", "401", "403", "404"}


async def test_the_errors_the_schema_promises_every_api_operation_are_given(
    live: _LiveService,
) -> None:
    """Without a key every ``/api`` operation answers 401; with a text body a changing one 415."""
    schema = await _schema(live)
    async with httpx2.AsyncClient(base_url=live.url) as client:
        for method, path, _ in _operations(schema):
            if not path.startswith("/api/"):
                continue
            url = re.sub(r"\{\w+\}", "alpha", path)
            response = await client.request(method, url, timeout=10)
            assert response.status_code == 401, (method, path)
            assert response.json()["error"]
            if method in {"POST", "PATCH", "DELETE"}:
                refused = await client.request(
                    method, url, content=b"x", headers={"content-type": "text/plain"}
                )
                assert refused.status_code == 415, (method, path)
