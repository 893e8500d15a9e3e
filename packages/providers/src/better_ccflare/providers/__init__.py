"""Upstream providers for the Anthropic Messages API.

A :class:`Provider` describes one kind of upstream account: how to address it, authenticate,
translate bodies, read rate-limit signals and usage. The built-ins cover Claude OAuth
subscriptions, console API keys, z.ai, Minimax, NanoGPT, Vertex AI, OpenAI-compatible and
Anthropic-compatible endpoints; third-party packages add more through the
``better_ccflare.providers`` entry-point group (see :class:`ProviderRegistry`).

The library needs only ``better-ccflare-core`` and ``httpx2`` (Vertex AI adds the ``vertex``
extra); it never imports the server stack.

The names below are what a library user needs: :class:`AccountAuth` (send requests as an
account with ``httpx2``, tokens refreshed, replies classified), the provider contract and its
types (for plugin authors), the built-in providers and the registry, the OAuth login,
Anthropic/OpenAI translation, pricing, and the usage-window vocabulary the proxy schedules on.
Each provider's own usage parsers and rate-limit readers stay in its module.
"""

from ._account_auth import AccountAuth, ReplyKind
from ._account_fields import (
    API_KEY_FIELD,
    CUSTOM_ENDPOINT_FIELD,
    AccountField,
    FieldKind,
)
from ._anthropic_api import HARD_STATUSES
from ._anthropic_compatible import AnthropicCompatibleProvider, EndpointProvider
from ._claude_oauth import ClaudeOAuthProvider
from ._console import ConsoleProvider
from ._contract import (
    API_VERSION,
    AccountConfigError,
    ClientRequest,
    Provider,
    ResponseTransformer,
    UnsupportedRequestError,
    UpstreamRequest,
    require_api_key,
)
from ._endpoint import Endpoint
from ._headers import forwardable_request_headers, forwardable_response_headers
from ._minimax import MinimaxProvider
from ._model_mapping import decode_json_object, map_model, parse_model_mappings
from ._nanogpt import NanoGptProvider
from ._oauth import (
    OAuthError,
    OAuthStateMismatchError,
    OAuthTransientError,
    ReauthRequiredError,
    build_authorize_url,
    create_console_api_key,
    exchange_code,
    parse_code_paste,
    refresh_access_token,
)
from ._openai_compatible import OpenAICompatibleProvider
from ._openai_request import anthropic_to_openai_request, openai_to_anthropic_request
from ._openai_response import (
    OpenAIJsonTransformer,
    TranslationError,
    anthropic_message_from_openai,
    anthropic_message_to_openai,
)
from ._openai_stream import OpenAIStreamTransformer
from ._pkce import PkcePair, generate_pkce, generate_state
from ._pricing import PRICES_AS_OF, ModelPrice, PriceTable, cost_usd, price_for
from ._readings import RateLimitInfo, RateLimitKind, UsageParser, UsageResult
from ._registry import (
    ENTRY_POINT_GROUP,
    PLUGIN_ALLOW_LIST_ENV,
    PluginFailure,
    ProviderOrigin,
    ProviderRegistry,
    UnknownAccountTypeError,
    UnknownProviderError,
    builtin_providers,
    default_registry,
)
from ._usage_fetch import UsageFetchError
from ._usage_windows import HARD_WINDOWS
from ._vertex_ai import VertexAIProvider, VertexCredentialsError, VertexExtraMissingError
from ._zai import ZaiProvider

__version__ = "0.1.0"

__all__ = [
    "API_KEY_FIELD",
    "API_VERSION",
    "CUSTOM_ENDPOINT_FIELD",
    "ENTRY_POINT_GROUP",
    "HARD_STATUSES",
    "HARD_WINDOWS",
    "PLUGIN_ALLOW_LIST_ENV",
    "PRICES_AS_OF",
    "AccountAuth",
    "AccountConfigError",
    "AccountField",
    "AnthropicCompatibleProvider",
    "ClaudeOAuthProvider",
    "ClientRequest",
    "ConsoleProvider",
    "Endpoint",
    "EndpointProvider",
    "FieldKind",
    "MinimaxProvider",
    "ModelPrice",
    "NanoGptProvider",
    "OAuthError",
    "OAuthStateMismatchError",
    "OAuthTransientError",
    "OpenAICompatibleProvider",
    "OpenAIJsonTransformer",
    "OpenAIStreamTransformer",
    "PkcePair",
    "PluginFailure",
    "PriceTable",
    "Provider",
    "ProviderOrigin",
    "ProviderRegistry",
    "RateLimitInfo",
    "RateLimitKind",
    "ReauthRequiredError",
    "ReplyKind",
    "ResponseTransformer",
    "TranslationError",
    "UnknownAccountTypeError",
    "UnknownProviderError",
    "UnsupportedRequestError",
    "UpstreamRequest",
    "UsageFetchError",
    "UsageParser",
    "UsageResult",
    "VertexAIProvider",
    "VertexCredentialsError",
    "VertexExtraMissingError",
    "ZaiProvider",
    "anthropic_message_from_openai",
    "anthropic_message_to_openai",
    "anthropic_to_openai_request",
    "build_authorize_url",
    "builtin_providers",
    "cost_usd",
    "create_console_api_key",
    "decode_json_object",
    "default_registry",
    "exchange_code",
    "forwardable_request_headers",
    "forwardable_response_headers",
    "generate_pkce",
    "generate_state",
    "map_model",
    "openai_to_anthropic_request",
    "parse_code_paste",
    "parse_model_mappings",
    "price_for",
    "refresh_access_token",
    "require_api_key",
]
