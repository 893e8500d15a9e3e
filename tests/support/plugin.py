"""A provider plugin "installed" for one test: a module and its dist-info on ``sys.path``.

It is discovered exactly as a pip-installed plugin is, through the entry points in its
metadata, so the server, the CLI and the API find it by themselves. The distribution also
declares a broken entry point, which every registry must skip with a reason.

The plugin, ``test-gateway``, declares three fields: the key (sent as ``x-gateway-key``), a
required endpoint and a required ``tenant`` (sent as ``x-gateway-tenant``). With more than the
endpoint, the values are stored as one JSON object in ``custom_endpoint``, which the plugin
reads back.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

__all__ = ["BROKEN_ENTRY_POINT", "PLUGIN_DISTRIBUTION", "PLUGIN_TYPE", "install_plugin"]

PLUGIN_TYPE = "test-gateway"
PLUGIN_DISTRIBUTION = "better-ccflare-provider-test-gateway"
BROKEN_ENTRY_POINT = "test-broken"
_MODULE = "ccflare_test_gateway_plugin"

_SOURCE = """
import json
from typing import ClassVar

from better_ccflare.core import Account, Credentials
from better_ccflare.providers import (
    API_KEY_FIELD,
    CUSTOM_ENDPOINT_FIELD,
    AccountField,
    Provider,
    require_api_key,
)


def _settings(account: Account) -> dict[str, str]:
    return json.loads(account.custom_endpoint or "{}")


class TestGatewayProvider(Provider):
    id: ClassVar[str] = "test-gateway"
    display_name: ClassVar[str] = "Test gateway"
    account_fields: ClassVar[tuple[AccountField, ...]] = (
        API_KEY_FIELD,
        AccountField(
            name=CUSTOM_ENDPOINT_FIELD.name, label="Gateway URL", kind=CUSTOM_ENDPOINT_FIELD.kind
        ),
        AccountField(name="tenant", label="Tenant", help="The gateway tenant to bill."),
    )

    def base_url(self, account: Account) -> str:
        return _settings(account)["custom_endpoint"]

    def prepare_headers(
        self, headers: dict[str, str], account: Account, credentials: Credentials
    ) -> None:
        headers["x-gateway-key"] = require_api_key(account, credentials)
        headers["x-gateway-tenant"] = _settings(account)["tenant"]
"""


def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the plugin's module and metadata first on ``sys.path`` for the test."""
    root = tmp_path / "site-packages"
    root.mkdir()
    (root / f"{_MODULE}.py").write_text(_SOURCE)
    dist_info = root / "better_ccflare_provider_test_gateway-0.3.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {PLUGIN_DISTRIBUTION}\nVersion: 0.3.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[better_ccflare.providers]\n"
        f"{PLUGIN_TYPE} = {_MODULE}:TestGatewayProvider\n"
        f"{BROKEN_ENTRY_POINT} = ccflare_no_such_module:Provider\n"
    )
    monkeypatch.setattr(sys, "path", [str(root), *sys.path])
    monkeypatch.delitem(sys.modules, _MODULE, raising=False)
    importlib.invalidate_caches()
