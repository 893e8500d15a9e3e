"""The ``openai-compatible`` provider: Anthropic clients served by an OpenAI Chat Completions API.

``POST /v1/messages`` is translated to ``/v1/chat/completions`` and the answer translated back,
streaming or not, so the proxy and its usage parser (the default Anthropic one) only ever see the
Anthropic format. Other paths are forwarded unchanged, and only their errors are translated. That
includes ``/v1/messages/count_tokens``, which OpenAI servers do not have: the proxy should answer
it without this provider (the reference answers it locally) rather than route it here.

The upstream is the account's ``custom_endpoint`` (a URL, or the reference's JSON
``{"endpoint": url}``), else :data:`OPENAI_COMPATIBLE`. A base ending in ``/v1``
does not get a second ``/v1``. The key goes in ``Authorization: Bearer``; the client's
``anthropic-*`` headers mean nothing to an OpenAI server and are not forwarded.

Rate limits, which the reference never read for these accounts:

=========================================================  ==============
Response                                                   Kind
=========================================================  ==============
429 whose body says ``insufficient_quota`` (billing)        OUT_OF_CREDITS
429 with a reset: ``retry-after`` (seconds or HTTP date),   ACCOUNT_QUOTA
``x-ratelimit-reset`` or
``x-ratelimit-reset-{requests,tokens}`` (``6m0s``, ``20ms``)
any other 429                                              REQUEST_SCOPED
529, or 503 whose body mentions overload                   OVERLOADED
anything else                                              NONE
=========================================================  ==============

Of the two ``x-ratelimit-reset-*`` durations, the one whose ``x-ratelimit-remaining-*`` is 0 is
the one that limits; when neither (or both) says so, the later reset is used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import ClassVar

import msgspec

from better_ccflare.core import Account, Credentials, ProviderKind

from ._anthropic_api import MAX_RESET_AHEAD_MS, classify_anthropic_rate_limit
from ._anthropic_compatible import EndpointProvider
from ._contract import (
    ClientRequest,
    ResponseTransformer,
    UnsupportedRequestError,
    UpstreamRequest,
    require_api_key,
)
from ._endpoint import Endpoint
from ._model_mapping import decode_json_object, map_model
from ._openai_request import anthropic_to_openai_request, as_str
from ._openai_response import IdFactory, OpenAIJsonTransformer, random_id
from ._openai_stream import OpenAIStreamTransformer
from ._readings import RateLimitInfo, RateLimitKind

__all__ = ["OPENAI_COMPATIBLE", "OpenAICompatibleProvider", "classify_openai_rate_limit"]

OPENAI_COMPATIBLE = Endpoint(
    ("BETTER_CCFLARE_OPENAI_COMPATIBLE_BASE_URL",),
    "https://api.openai.com",
    "Default upstream for openai-compatible accounts without a custom endpoint.",
)

_COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
_MESSAGES_PATH = "/v1/messages"
_CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
_ANTHROPIC_ONLY_HEADERS = (
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_MS_PER_UNIT = {
    "ns": 1e-6,
    "us": 1e-3,
    "µs": 1e-3,
    "ms": 1.0,
    "s": 1e3,
    "m": 60e3,
    "h": 3600e3,
}


class OpenAICompatibleProvider(EndpointProvider):
    """Any server that speaks OpenAI Chat Completions, reached with a bearer API key.

    Args:
        new_id: Makes the message and tool-call ids an upstream leaves out; injectable so tests
            are deterministic.
    """

    id: ClassVar[str] = ProviderKind.OPENAI_COMPATIBLE.value
    display_name: ClassVar[str] = "OpenAI-compatible"
    default_endpoint: ClassVar[Endpoint] = OPENAI_COMPATIBLE

    def __init__(self, *, new_id: IdFactory = random_id) -> None:
        self._new_id = new_id

    def build_request(
        self, request: ClientRequest, account: Account, credentials: Credentials
    ) -> UpstreamRequest:
        """The upstream request; a ``/v1/messages`` body is translated and its model mapped.

        The client's query is dropped on translated requests: it belongs to the Anthropic API
        (Claude Code sends ``?beta=true``).

        Raises:
            AccountConfigError: No API key is stored, or the custom endpoint is invalid.
            UnsupportedRequestError: The ``/v1/messages`` body is not a JSON object, or the
                request is ``count_tokens``, which OpenAI-compatible upstreams cannot answer (the
                proxy then tries another account instead of making a call bound to fail).
        """
        base = self.base_url(account)
        path = request.path
        if path == _COUNT_TOKENS_PATH:
            raise UnsupportedRequestError(
                f"{self.display_name} upstreams have no {_COUNT_TOKENS_PATH} endpoint."
            )
        if path != _MESSAGES_PATH:
            forwarded = msgspec.structs.replace(request, path=_path_under(base, path))
            return super().build_request(forwarded, account, credentials)
        fields = decode_json_object(request.body)
        if fields is None:
            raise UnsupportedRequestError(
                f"The {_MESSAGES_PATH} request body is not a JSON object "
                f"({len(request.body)} bytes); send an Anthropic Messages request."
            )
        translated = anthropic_to_openai_request(fields)
        client_model = as_str(fields.get("model"))
        upstream_model = None
        if client_model:
            upstream_model = map_model(client_model, account.model_mappings)[0]
            translated["model"] = upstream_model
        return self.upstream_request(
            request,
            account,
            credentials,
            url=base + _path_under(base, _CHAT_COMPLETIONS_PATH),
            body=msgspec.json.encode(translated),
            client_model=client_model,
            upstream_model=upstream_model,
            content_type="application/json",
        )

    def prepare_headers(
        self, headers: dict[str, str], account: Account, credentials: Credentials
    ) -> None:
        for name in _ANTHROPIC_ONLY_HEADERS:
            headers.pop(name, None)
        headers["authorization"] = f"Bearer {require_api_key(account, credentials)}"

    def response_transformer(
        self, *, path: str, status: int, headers: Mapping[str, str], request: UpstreamRequest
    ) -> ResponseTransformer | None:
        """Translate ``/v1/messages`` answers and every error; pass other successes through."""
        if path != _MESSAGES_PATH and status < 400:
            return None
        if "text/event-stream" in headers.get("content-type", ""):
            return OpenAIStreamTransformer(new_id=self._new_id)
        return OpenAIJsonTransformer(status=status, new_id=self._new_id)

    def classify_rate_limit(
        self, *, status: int, headers: Mapping[str, str], body: bytes | None, now_ms: int
    ) -> RateLimitInfo:
        return classify_openai_rate_limit(status=status, headers=headers, body=body, now_ms=now_ms)


def _path_under(base: str, path: str) -> str:
    """``path`` to append to ``base``, without repeating a ``/v1`` the base ends in."""
    if base.endswith("/v1") and (path == "/v1" or path.startswith("/v1/")):
        return path.removeprefix("/v1")
    return path


def classify_openai_rate_limit(
    *, status: int, headers: Mapping[str, str], body: bytes | None = None, now_ms: int
) -> RateLimitInfo:
    """Classify a response from an OpenAI-compatible upstream; see the module's table.

    Args:
        status: HTTP status code.
        headers: Response headers with lower-case names.
        body: The body or a prefix of it.
        now_ms: The current time, for relative resets.
    """
    lowered = (body or b"").lower()
    if status == 429 and b"insufficient_quota" in lowered:
        return RateLimitInfo(kind=RateLimitKind.OUT_OF_CREDITS)
    if status == 529 or (status == 503 and b"overload" in lowered):
        # The Anthropic table reads retry-after and clamps an overload's reset the same way.
        return classify_anthropic_rate_limit(status=529, headers=headers, now_ms=now_ms)
    if status != 429:
        return RateLimitInfo()
    reset_at_ms = classify_anthropic_rate_limit(
        status=status, headers=headers, now_ms=now_ms
    ).reset_at_ms or _duration_reset_ms(headers, now_ms)
    if reset_at_ms is None:
        return RateLimitInfo(kind=RateLimitKind.REQUEST_SCOPED)
    return RateLimitInfo(kind=RateLimitKind.ACCOUNT_QUOTA, reset_at_ms=reset_at_ms)


def _duration_reset_ms(headers: Mapping[str, str], now_ms: int) -> int | None:
    """The reset from OpenAI's ``x-ratelimit-reset-{requests,tokens}`` durations."""
    resets: dict[str, int] = {}
    for kind in ("requests", "tokens"):
        duration = _duration_ms(headers.get(f"x-ratelimit-reset-{kind}", ""))
        if duration:
            resets[kind] = duration
    exhausted = [
        duration
        for kind, duration in resets.items()
        if headers.get(f"x-ratelimit-remaining-{kind}", "").strip() == "0"
    ]
    chosen = exhausted or list(resets.values())
    return now_ms + min(max(chosen), MAX_RESET_AHEAD_MS) if chosen else None


def _duration_ms(text: str) -> int | None:
    """A Go-style duration (``1s``, ``6m0s``, ``1h2m3.5s``, ``20ms``) or bare seconds, in ms."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return _ceil_ms(seconds * 1000) if math.isfinite(seconds) and seconds >= 0 else None
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _MS_PER_UNIT[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text) or not math.isfinite(total):
        return None
    return _ceil_ms(total)


def _ceil_ms(ms: float) -> int:
    """Round up to whole ms, ignoring float noise (``1.1 s`` is 1100 ms, not 1101)."""
    return math.ceil(round(ms, 6))
