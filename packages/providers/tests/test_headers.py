"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.providers._headers import (
    append_anthropic_beta,
    forwardable_request_headers,
    forwardable_response_headers,
)

CLAUDE_CODE_HEADERS = {
    "Host": "127.0.0.1:8080",
    "Authorization": "Bearer proxy-key",
    "X-Api-Key": "sk-ant-client",
    "Content-Type": "application/json",
    "Content-Length": "1234",
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate, br",
    "Anthropic-Version": "2023-06-01",
    "Anthropic-Beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "User-Agent": "claude-cli/2.1.238 (external, cli)",
    "X-Stainless-Lang": "js",
    "X-App": "cli",
    "Connection": "keep-alive",
}


def test_client_headers_are_forwarded_with_lower_case_names() -> None:
    forwarded = forwardable_request_headers(CLAUDE_CODE_HEADERS)
    assert forwarded["anthropic-version"] == "2023-06-01"
    assert forwarded["anthropic-beta"] == "claude-code-20250219,interleaved-thinking-2025-05-14"
    assert forwarded["user-agent"] == "claude-cli/2.1.238 (external, cli)"
    assert forwarded["x-stainless-lang"] == "js"
    assert forwarded["x-app"] == "cli"
    assert forwarded["content-type"] == "application/json"
    assert all(name == name.lower() for name in forwarded)


def test_client_credentials_never_go_upstream() -> None:
    forwarded = forwardable_request_headers(
        {"authorization": "Bearer a", "x-api-key": "b", "cookie": "session=c"}
    )
    assert set(forwarded) == {"accept-encoding"}


def test_connection_and_framing_headers_are_dropped() -> None:
    forwarded = forwardable_request_headers(
        {
            "host": "proxy",
            "content-length": "10",
            "connection": "keep-alive, x-hop",
            "keep-alive": "timeout=5",
            "te": "trailers",
            "trailer": "x",
            "transfer-encoding": "chunked",
            "upgrade": "h2c",
            "proxy-authorization": "Basic x",
            "proxy-connection": "keep-alive",
            "x-hop": "listed in connection",
            "x-kept": "yes",
        }
    )
    assert forwarded == {"x-kept": "yes", "accept-encoding": "identity"}


def test_every_better_ccflare_control_header_is_dropped() -> None:
    forwarded = forwardable_request_headers(
        {
            "x-better-ccflare-account-id": "acc",
            "X-Better-Ccflare-Bypass-Session": "1",
            "x-better-ccflare-exclude-providers": "zai",
            "x-better-ccflare-agent-id": "agent",
            "x-better-ccflare-project": "proj",
            "x-better-ccflare-anything-new": "x",
        }
    )
    assert forwarded == {"accept-encoding": "identity"}


def test_the_legacy_project_header_is_dropped() -> None:
    forwarded = forwardable_request_headers({"X-Project": "proj", "x-kept": "yes"})
    assert forwarded == {"x-kept": "yes", "accept-encoding": "identity"}


def test_reverse_proxy_client_hints_are_dropped() -> None:
    forwarded = forwardable_request_headers(
        {
            "x-forwarded-for": "10.0.0.1",
            "x-forwarded-proto": "https",
            "forwarded": "for=x",
            "x-real-ip": "1",
        }
    )
    assert forwarded == {"accept-encoding": "identity"}


def test_upstream_is_asked_for_an_identity_encoded_body() -> None:
    assert forwardable_request_headers(CLAUDE_CODE_HEADERS)["accept-encoding"] == "identity"
    assert forwardable_request_headers({})["accept-encoding"] == "identity"


def test_response_headers_lose_framing_but_keep_encoding_and_rate_limits() -> None:
    forwarded = forwardable_response_headers(
        {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Content-Length": "999",
            "Content-Encoding": "gzip",
            "Transfer-Encoding": "chunked",
            "Connection": "keep-alive",
            "Keep-Alive": "timeout=5",
            "request-id": "req_011CUx",
            "anthropic-ratelimit-unified-status": "allowed",
            "anthropic-ratelimit-unified-reset": "1767243600",
        }
    )
    assert forwarded == {
        "content-type": "text/event-stream; charset=utf-8",
        "content-encoding": "gzip",  # the bytes pass through undecoded
        "request-id": "req_011CUx",
        "anthropic-ratelimit-unified-status": "allowed",
        "anthropic-ratelimit-unified-reset": "1767243600",
    }


def test_the_upstreams_date_and_server_stay_behind() -> None:
    # The proxy's HTTP server stamps its own Date; a second one, or the upstream's Server,
    # would reach the client beside it.
    forwarded = forwardable_response_headers(
        {"Date": "Tue, 01 Dec 2026 10:00:00 GMT", "Server": "cloudflare", "cf-ray": "9a1b"}
    )
    assert forwarded == {"cf-ray": "9a1b"}


_NAMES = st.one_of(
    st.sampled_from(
        [
            "Content-Length",
            "connection",
            "Keep-Alive",
            "proxy-authenticate",
            "Date",
            "server",
            "x-custom",
            "Content-Type",
            "anthropic-ratelimit-unified-reset",
        ]
    ),
    st.text(alphabet="abcXYZ-", min_size=1, max_size=8),
)
_VALUES = st.one_of(st.sampled_from(["keep-alive", "close, X-Custom", "x"]), st.text(max_size=8))


@given(st.dictionaries(_NAMES, _VALUES, max_size=12))
def test_response_headers_already_lower_case_skip_a_pass_and_change_nothing(
    headers: dict[str, str],
) -> None:
    lowered = {name.lower(): value for name, value in headers.items()}
    assert forwardable_response_headers(
        lowered, lower_case_names=True
    ) == forwardable_response_headers(lowered)


def test_names_listed_in_connection_and_proxy_headers_stay_behind() -> None:
    forwarded = forwardable_response_headers(
        {"connection": "close, X-Trace", "x-trace": "1", "proxy-authenticate": "Basic", "a": "b"},
        lower_case_names=True,
    )
    assert forwarded == {"a": "b"}


def test_beta_is_created_when_absent() -> None:
    headers: dict[str, str] = {}
    append_anthropic_beta(headers, "oauth-2025-04-20")
    assert headers == {"anthropic-beta": "oauth-2025-04-20"}


def test_beta_is_appended_to_the_client_list() -> None:
    headers = {"anthropic-beta": "claude-code-20250219, fine-grained-tool-streaming-2025-05-14"}
    append_anthropic_beta(headers, "oauth-2025-04-20")
    assert headers["anthropic-beta"] == (
        "claude-code-20250219,fine-grained-tool-streaming-2025-05-14,oauth-2025-04-20"
    )


def test_beta_is_not_duplicated() -> None:
    headers = {"anthropic-beta": "oauth-2025-04-20,claude-code-20250219"}
    append_anthropic_beta(headers, "oauth-2025-04-20")
    assert headers["anthropic-beta"] == "oauth-2025-04-20,claude-code-20250219"
