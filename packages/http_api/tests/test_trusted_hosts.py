"""Which Host and Origin values name the server: loopback, the bound address, the allow-list."""

from __future__ import annotations

import pytest

from better_ccflare.http_api import TrustedHosts

LOCAL = TrustedHosts(bound_host="127.0.0.1")


@pytest.mark.parametrize(
    "host",
    [b"localhost", b"LOCALHOST:8080", b"127.0.0.1:8080", b"[::1]:8080", b"[::1]", b"a.localhost:1"],
)
def test_loopback_names_are_allowed_with_or_without_a_port(host: bytes) -> None:
    assert LOCAL.allows_host(host)
    assert LOCAL.allows_host(host)  # and again, from the remembered values


@pytest.mark.parametrize(
    "host",
    [b"evil.example", b"evil.example:8080", b"localhost.evil.example", b"127.0.0.1.evil", b""],
)
def test_other_names_are_refused(host: bytes) -> None:
    assert not LOCAL.allows_host(host)


def test_the_bound_address_is_a_name_of_the_server_unless_it_is_a_wildcard() -> None:
    assert TrustedHosts(bound_host="192.168.1.5").allows_host(b"192.168.1.5:8080")
    assert TrustedHosts(bound_host="fd00::1").allows_host(b"[fd00::1]:8080")
    assert not TrustedHosts(bound_host="0.0.0.0").allows_host(b"0.0.0.0:8080")
    assert not TrustedHosts(bound_host="::").allows_host(b"[::]:8080")


def test_allowed_names_are_matched_without_port_and_star_allows_any() -> None:
    listed = TrustedHosts(bound_host="127.0.0.1", allowed=("proxy.example",))
    assert listed.allows_host(b"Proxy.Example:443")
    assert not listed.allows_host(b"other.example")
    assert TrustedHosts(bound_host="127.0.0.1", allowed=("*",)).allows_host(b"any.example")


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (b"http://127.0.0.1:8080", b"127.0.0.1:8080", True),
        (b"http://localhost:5173", b"127.0.0.1:8080", True),
        (b"https://evil.example", b"127.0.0.1:8080", False),
        (b"null", b"127.0.0.1:8080", False),
        (b"http://evil.example:8080/", b"evil.example:8080", False),
    ],
)
def test_state_changes_are_allowed_only_from_this_servers_pages(
    origin: bytes, host: bytes, allowed: bool
) -> None:
    assert LOCAL.allows_origin(origin, host) is allowed


def test_behind_a_star_only_the_requests_own_host_vouches_for_its_page() -> None:
    proxied = TrustedHosts(bound_host="127.0.0.1", allowed=("*",))
    assert proxied.allows_origin(b"https://proxy.example", b"proxy.example")
    assert not proxied.allows_origin(b"https://evil.example", b"proxy.example")
