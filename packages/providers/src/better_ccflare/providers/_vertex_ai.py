"""Claude on Google Vertex AI.

The account's ``custom_endpoint`` holds JSON ``{"projectId": "...", "region": "..."}``. Requests
go to ``{base}/v1/projects/{projectId}/locations/{region}/publishers/anthropic/models/{model}``
with ``:streamRawPredict`` when the body asks to stream and ``:rawPredict`` otherwise (the
reference looked at the URL instead of the body, so streaming requests were sent to the
non-streaming method). The model moves from the body into the URL, after mapping, with its
date suffix written Vertex's way (``claude-x-20250929`` becomes ``claude-x@20250929``); the
body gains ``anthropic_version: vertex-2023-10-16``. Token counting goes to
``.../models/count-tokens:rawPredict``, which keeps ``model`` in the body. Client query strings
(Claude Code's ``?beta=true``) and the ``anthropic-beta``/``anthropic-version`` headers mean
nothing to Vertex and are dropped.

Authentication is a Google OAuth access token. If the account's ``credentials.api_key`` holds a
path, it is read as a service-account JSON key file; otherwise Application Default Credentials
are used (``gcloud auth application-default login`` or ``GOOGLE_APPLICATION_CREDENTIALS``). The
token is obtained in :meth:`VertexAIProvider.refresh_credentials`, with google-auth's blocking
refresh running in a worker thread. google-auth is the optional ``vertex`` extra and is
imported only then.

Non-streaming JSON responses get the client's original model name back in ``model``.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, ClassVar, Protocol, cast
from urllib.parse import quote

import httpx2
import msgspec

from better_ccflare.core import (
    Account,
    BetterCcflareError,
    Credentials,
    InvalidInputError,
    ProviderKind,
)

from ._account_fields import AccountField, FieldKind
from ._contract import (
    AccountConfigError,
    ClientRequest,
    Provider,
    ResponseTransformer,
    UnsupportedRequestError,
    UpstreamRequest,
)
from ._endpoint import Endpoint
from ._model_mapping import decode_json_object, map_model
from ._redaction import without_secrets

__all__ = [
    "VERTEX_AI",
    "VERTEX_ANTHROPIC_VERSION",
    "VERTEX_EXTRA_HINT",
    "VERTEX_SCOPE",
    "CredentialsFactory",
    "GoogleCredentials",
    "VertexAIProvider",
    "VertexCredentialsError",
    "VertexExtraMissingError",
    "google_credentials",
]

VERTEX_AI = Endpoint(
    ("BETTER_CCFLARE_VERTEX_AI_BASE_URL",),
    "https://{region}-aiplatform.googleapis.com",
    "Vertex AI; {region} is filled in (the global region has no prefix).",
)
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
VERTEX_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
VERTEX_EXTRA_HINT = "pip install 'better-ccflare-providers[vertex]'"
_TOKEN_LIFETIME_FALLBACK_MS = 3_600_000
"""Google access tokens live an hour; used only if the credentials do not say."""
_REFRESH_WINDOW_MS = 5 * 60_000
_TRANSPORT_TIMEOUT_S = 30.0
_MAX_RESTORED_BODY_BYTES = 32 << 20

_MESSAGES_PATH = "/v1/messages"
_COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
_DATE_SUFFIX = re.compile(r"-(\d{8})$")
_REGION = re.compile(r"^[a-z0-9-]+$")
_PROJECT = re.compile(r"^[A-Za-z0-9.:_-]+$")


class VertexExtraMissingError(ImportError):
    """google-auth is not installed; it comes with the ``vertex`` extra."""


class VertexCredentialsError(BetterCcflareError):
    """No Google access token could be obtained for a Vertex AI account."""


class GoogleCredentials(Protocol):
    """The part of ``google.auth.credentials.Credentials`` this provider uses."""

    @property
    def token(self) -> str | None: ...

    @property
    def expiry(self) -> datetime | None:
        """Naive UTC, as google-auth keeps it."""
        ...

    def refresh(self, request: Any) -> None:
        """Fetch a new token (blocking I/O through ``request``)."""
        ...


CredentialsFactory = Callable[[str | None], GoogleCredentials]
"""Builds unrefreshed credentials from a service-account file path, or ADC when ``None``."""


def _import_google(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise VertexExtraMissingError(
            f"Vertex AI accounts need google-auth, which is not installed ({exc}). "
            f"Install it with: {VERTEX_EXTRA_HINT}"
        ) from exc


def google_credentials(service_account_path: str | None) -> GoogleCredentials:
    """Credentials from a service-account key file, or Application Default Credentials.

    Blocking (it may read files); call it from a worker thread.

    Raises:
        VertexExtraMissingError: google-auth is not installed.
        VertexCredentialsError: The key file is unreadable or no ADC are configured.
    """
    # google-auth is untyped; these modules are bound as Any at this one edge.
    auth: Any = _import_google("google.auth")
    service_account: Any = _import_google("google.oauth2.service_account")
    exceptions: Any = _import_google("google.auth.exceptions")
    try:
        if service_account_path:
            return cast(
                "GoogleCredentials",
                service_account.Credentials.from_service_account_file(
                    service_account_path, scopes=[VERTEX_SCOPE]
                ),
            )
        credentials, _project = auth.default(scopes=[VERTEX_SCOPE])
        return cast("GoogleCredentials", credentials)
    except (OSError, ValueError, exceptions.DefaultCredentialsError) as exc:
        where = (
            f"the service-account key file {service_account_path!r}"
            if service_account_path
            else "Application Default Credentials"
        )
        raise VertexCredentialsError(
            f"Could not load Google credentials from {where}: {exc}. Store the path of a "
            "service-account JSON key as the account's API key, or run "
            "`gcloud auth application-default login` on the proxy's host."
        ) from exc


class _TransportResponse:
    """What google-auth reads from a transport's response."""

    __slots__ = ("data", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self.status = status
        self.headers = headers
        self.data = data


class _HttpxTransport:
    """google-auth's transport interface over a blocking httpx2 client.

    google-auth's own transports need ``requests`` or ``urllib3``; this keeps the extra down to
    google-auth alone. It only ever runs in a worker thread.
    """

    __slots__ = ("_client",)

    def __init__(self, client: httpx2.Client) -> None:
        self._client = client

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **_kwargs: object,
    ) -> _TransportResponse:
        try:
            response = self._client.request(
                method,
                url,
                content=body,
                headers=headers,
                timeout=timeout or _TRANSPORT_TIMEOUT_S,
            )
        except httpx2.HTTPError as exc:
            exceptions: Any = _import_google("google.auth.exceptions")
            raise exceptions.TransportError(str(exc)) from exc
        return _TransportResponse(response.status_code, response.headers, response.content)


class _VertexLocation(msgspec.Struct, rename="camel"):
    project_id: str
    region: str


class VertexAIProvider(Provider):
    """Claude models served by Vertex AI in a Google Cloud project.

    Args:
        credentials_factory: Builds Google credentials; :func:`google_credentials` by default.
            Tests inject fakes so that no token request leaves the process.
    """

    id: ClassVar[str] = ProviderKind.VERTEX_AI.value
    display_name: ClassVar[str] = "Google Vertex AI"
    refreshes_tokens: ClassVar[bool] = True
    account_fields: ClassVar[tuple[AccountField, ...]] = (
        AccountField(
            name="project_id",
            label="Google Cloud project id",
            help="The project Claude is enabled in, for example my-project-123.",
        ),
        AccountField(
            name="region",
            label="Vertex AI region",
            default="us-east5",
            help="Where the model runs, for example us-east5 or global.",
        ),
        AccountField(
            name="api_key",
            label="Service-account key file",
            kind=FieldKind.TEXT,
            required=False,
            help="Path of a service-account JSON key on the server; empty uses Application "
            "Default Credentials.",
        ),
    )

    def __init__(self, *, credentials_factory: CredentialsFactory | None = None) -> None:
        self._credentials_factory = credentials_factory or google_credentials

    def base_url(self, account: Account) -> str:
        return _origin(self._location(account).region)

    def custom_endpoint_for(self, settings: Mapping[str, str]) -> str | None:
        """Project and region as the JSON :meth:`base_url` reads, each checked as it will be."""
        project, region = settings.get("project_id", ""), settings.get("region", "")
        if not _PROJECT.fullmatch(project):
            raise InvalidInputError(
                "project_id",
                f"{project!r} is not a Google Cloud project id (one looks like my-project-123)",
            )
        if not _REGION.fullmatch(region):
            raise InvalidInputError(
                "region",
                f"{region!r} is not a Google Cloud region (for example us-east5 or global)",
            )
        return msgspec.json.encode(_VertexLocation(project_id=project, region=region)).decode()

    def build_request(
        self, request: ClientRequest, account: Account, credentials: Credentials
    ) -> UpstreamRequest:
        method, path = request.method, request.path
        counting = path == _COUNT_TOKENS_PATH
        if method != "POST" or path not in (_MESSAGES_PATH, _COUNT_TOKENS_PATH):
            raise UnsupportedRequestError(
                f"Vertex AI accounts serve only POST {_MESSAGES_PATH} and {_COUNT_TOKENS_PATH}, "
                f"not {method} {path}."
            )
        fields = decode_json_object(request.body)
        client_model = fields.get("model") if fields is not None else None
        if fields is None or not isinstance(client_model, str) or not client_model:
            raise UnsupportedRequestError(
                "Vertex AI needs a JSON request body with a model; this one has none."
            )
        mapped_model = map_model(client_model, account.model_mappings)[0]
        upstream_model = _DATE_SUFFIX.sub(r"@\1", mapped_model)
        fields["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
        if counting:
            fields["model"] = upstream_model
            target = "count-tokens:rawPredict"
        else:
            del fields["model"]
            method_name = "streamRawPredict" if fields.get("stream") is True else "rawPredict"
            target = f"{quote(upstream_model, safe='@')}:{method_name}"
        location = self._location(account)
        url = (
            f"{_origin(location.region)}/v1/projects/{location.project_id}"
            f"/locations/{location.region}/publishers/anthropic/models/{target}"
        )
        return self.upstream_request(
            request,
            account,
            credentials,
            url=url,
            body=msgspec.json.encode(fields),
            client_model=client_model,
            upstream_model=upstream_model,
        )

    def prepare_headers(
        self, headers: dict[str, str], account: Account, credentials: Credentials
    ) -> None:
        if not credentials.access_token:
            raise AccountConfigError(
                account,
                "no Google access token is available",
                "Refresh the account's credentials first (the token manager does this).",
            )
        headers.pop("anthropic-beta", None)
        headers.pop("anthropic-version", None)
        headers["authorization"] = f"Bearer {credentials.access_token}"

    def response_transformer(
        self, *, path: str, status: int, headers: Mapping[str, str], request: UpstreamRequest
    ) -> ResponseTransformer | None:
        content_type = headers.get("content-type", "")
        if path != _MESSAGES_PATH or request.client_model is None:
            return None
        if "json" not in content_type or "event-stream" in content_type:
            return None
        return _ModelRestorer(request.client_model)

    def needs_refresh(self, credentials: Credentials, now_ms: int) -> bool:
        return not credentials.access_token or credentials.expires_within(
            now_ms, _REFRESH_WINDOW_MS
        )

    async def refresh_credentials(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> Credentials:
        """A fresh Google access token; the service-account path (if any) is kept as is.

        Raises:
            VertexExtraMissingError: google-auth is not installed.
            VertexCredentialsError: No credentials could be loaded or refreshed.
        """
        path = account.credentials.api_key
        held = (account.credentials.access_token, account.credentials.refresh_token)
        token, expiry = await asyncio.to_thread(self._obtain_token, path, held)
        if expiry is None:
            expires_at_ms = now_ms + _TOKEN_LIFETIME_FALLBACK_MS
        else:
            aware = expiry if expiry.tzinfo is not None else expiry.replace(tzinfo=UTC)
            expires_at_ms = int(aware.timestamp() * 1000)
        return Credentials(api_key=path, access_token=token, expires_at_ms=expires_at_ms)

    def _obtain_token(
        self, service_account_path: str | None, held: tuple[str | None, ...]
    ) -> tuple[str, datetime | None]:
        """Blocking: build the credentials and refresh them. Runs in a worker thread.

        ``held`` are the account's current tokens, kept out of the error message should
        Google's answer echo one (the cause is not chained, for the same reason).
        """
        exceptions: Any = _import_google("google.auth.exceptions")
        credentials = self._credentials_factory(service_account_path)
        with httpx2.Client() as http:
            try:
                credentials.refresh(_HttpxTransport(http))
            except exceptions.GoogleAuthError as exc:
                detail = without_secrets(f"{exc}", (*held, credentials.token))
                raise VertexCredentialsError(
                    f"Google did not issue an access token: {type(exc).__name__}: {detail}"
                ) from None
        if not credentials.token:
            raise VertexCredentialsError("Google credentials refreshed but hold no access token.")
        return credentials.token, credentials.expiry

    def _location(self, account: Account) -> _VertexLocation:
        try:
            location = msgspec.json.decode(account.custom_endpoint or "", type=_VertexLocation)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise AccountConfigError(
                account,
                f"custom_endpoint must be JSON like "
                f'{{"projectId": "my-project", "region": "us-east5"}} ({exc})',
                "Set the account's Vertex AI project and region.",
            ) from None
        if not _PROJECT.fullmatch(location.project_id) or not _REGION.fullmatch(location.region):
            raise AccountConfigError(
                account,
                f"projectId {location.project_id!r} or region {location.region!r} is not a "
                "Google Cloud project id or region name",
                "Fix the account's Vertex AI project and region.",
            )
        return location


def _origin(region: str) -> str:
    """The regional endpoint; the ``global`` region's host has no region prefix."""
    template = VERTEX_AI.url()
    if region == "global":
        template = template.replace("{region}-", "")
    return template.replace("{region}", region)


class _ModelRestorer(ResponseTransformer):
    """Puts the client's model name back into a JSON response (Vertex echoes its own)."""

    __slots__ = ("_body", "_model", "_passthrough")

    def __init__(self, model: str) -> None:
        self._model = model
        self._body = bytearray()
        self._passthrough = False

    def feed(self, chunk: bytes) -> bytes:
        if self._passthrough:
            return chunk
        if len(self._body) + len(chunk) > _MAX_RESTORED_BODY_BYTES:
            # Too big to hold: give up on the cosmetic rewrite, never on the response.
            self._passthrough = True
            held = bytes(self._body) + chunk
            self._body.clear()
            return held
        self._body += chunk
        return b""

    def close(self) -> bytes:
        if self._passthrough:
            return b""
        fields = decode_json_object(bytes(self._body))
        if fields is None or "model" not in fields:
            return bytes(self._body)
        fields["model"] = self._model
        return msgspec.json.encode(fields)
