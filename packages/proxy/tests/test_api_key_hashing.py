"""Proxy API key generation and hashing, including compatibility with the reference's hashes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from better_ccflare.proxy._api_key_hashing import (
    generate_api_key,
    hash_api_key,
    looks_like_api_key,
    verify_api_key,
)

# Produced by Node's crypto.scryptSync(key, salt, 64) with default parameters, as the
# TypeScript better-ccflare stores keys.
NODE_KEY = "btr-abcdefghijklmnopqrstuvwxyzABCDEF"
NODE_HASH = (
    "00112233445566778899aabbccddeeff:"
    "bd86771c258697115a401afabab9e7d0a64ebf714b4e308922640223a60f9460"
    "465dd584ec7e47f0f9a26c8fc40772d3a8b4b6661a002c13d16bea996cb1b629"
)


def test_key_verifies_against_a_hash_made_by_the_reference() -> None:
    assert verify_api_key(NODE_KEY, NODE_HASH)


def test_our_hash_of_the_same_key_and_salt_equals_the_reference() -> None:
    assert (
        hash_api_key(NODE_KEY, salt=bytes.fromhex("00112233445566778899aabbccddeeff")) == NODE_HASH
    )


def test_wrong_key_is_rejected() -> None:
    assert not verify_api_key(NODE_KEY[:-1] + "X", NODE_HASH)


def test_generated_keys_have_the_reference_shape_and_differ() -> None:
    keys = {generate_api_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(looks_like_api_key(k) and len(k) == 36 for k in keys)


def test_fresh_hash_roundtrips_and_is_salted() -> None:
    key = generate_api_key()
    first, second = hash_api_key(key), hash_api_key(key)
    assert first != second
    assert verify_api_key(key, first)
    assert verify_api_key(key, second)


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=200))
def test_malformed_stored_hashes_never_raise(stored: str) -> None:
    assert verify_api_key(NODE_KEY, stored) is False


def test_shape_check_rejects_near_misses() -> None:
    assert not looks_like_api_key("btr-short")
    assert not looks_like_api_key("sk-" + "a" * 32)
    assert not looks_like_api_key("btr-" + "a" * 31 + "!")
