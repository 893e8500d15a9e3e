"""An example provider: an Anthropic-compatible gateway that wants its key in ``x-gateway-key``.

Everything not overridden here comes from :class:`better_ccflare.providers.Provider`'s
defaults: the client's path and query are forwarded, client credentials and proxy control
headers are stripped, the account's model mapping is applied, rate limits are read from
Anthropic's headers and token usage from the Anthropic Messages format.

Its accounts need a key and may set their own gateway URL: ``account_fields`` says so, and
``better-ccflare account add --mode example-gateway``, ``POST /api/accounts/example-gateway``
and the dashboard's form ask for exactly these.
"""

from __future__ import annotations

from typing import ClassVar

from better_ccflare.core import Account, Credentials
from better_ccflare.providers import (
    API_KEY_FIELD,
    CUSTOM_ENDPOINT_FIELD,
    AccountField,
    Endpoint,
    Provider,
    require_api_key,
)

__all__ = ["GATEWAY", "ExampleGatewayProvider"]

GATEWAY = Endpoint(
    ("EXAMPLE_GATEWAY_URL",),
    "http://127.0.0.1:4000",
    "The example gateway, unless an account sets its own custom endpoint.",
)


class ExampleGatewayProvider(Provider):
    """Accounts on the example gateway; the account's API key is the gateway key."""

    id: ClassVar[str] = "example-gateway"
    display_name: ClassVar[str] = "Example gateway"
    account_fields: ClassVar[tuple[AccountField, ...]] = (
        API_KEY_FIELD,
        AccountField(
            name=CUSTOM_ENDPOINT_FIELD.name,
            label="Gateway URL",
            kind=CUSTOM_ENDPOINT_FIELD.kind,
            required=False,
            help="Empty uses EXAMPLE_GATEWAY_URL, else http://127.0.0.1:4000.",
        ),
    )

    def base_url(self, account: Account) -> str:
        return (account.custom_endpoint or GATEWAY.url()).rstrip("/")

    def prepare_headers(
        self, headers: dict[str, str], account: Account, credentials: Credentials
    ) -> None:
        headers["x-gateway-key"] = require_api_key(account, credentials)
        headers["x-gateway-client"] = "better-ccflare"
