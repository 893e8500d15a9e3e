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

# Our stored form: the salt is the 16 bytes its hex spells. Produced by Node with default
# scrypt parameters (N=16384, r=8, p=1):
#   node -e "const c=require('crypto'); console.log(c.scryptSync(
#     'btr-abcdefghijklmnopqrstuvwxyzABCDEF',
#     Buffer.from('00112233445566778899aabbccddeeff', 'hex'), 64).toString('hex'))"
NODE_KEY = "btr-abcdefghijklmnopqrstuvwxyzABCDEF"
NODE_HASH = (
    "00112233445566778899aabbccddeeff:"
    "bd86771c258697115a401afabab9e7d0a64ebf714b4e308922640223a60f9460"
    "465dd584ec7e47f0f9a26c8fc40772d3a8b4b6661a002c13d16bea996cb1b629"
)

# The TypeScript better-ccflare's stored form: it passes the salt to scrypt as the hex *string*
# (its 32 UTF-8 bytes), exactly as packages/types/src/api-key.ts calls it. Produced by:
#   node -e "const c=require('crypto'); const s='00112233445566778899aabbccddeeff';
#     console.log(s + ':' + c.scryptSync('btr-abcdefghijklmnopqrstuvwxyzABCDEF', s, 64)
#     .toString('hex'))"
REFERENCE_HASH = (
    "00112233445566778899aabbccddeeff:"
    "a286d8c1fa61e0e64dd97c7d217bea9398c33a38feb403ad821f9fb5fd8ff8e8"
    "3ad9e4c1ca95e067764b17acfb08e5b0fc7cc4193ddd508e3e2690e1fd1a94c2"
)


def test_key_verifies_against_a_hash_stored_by_the_typescript_original() -> None:
    assert verify_api_key(NODE_KEY, REFERENCE_HASH)


def test_wrong_key_is_rejected_against_a_hash_stored_by_the_typescript_original() -> None:
    assert not verify_api_key(NODE_KEY[:-1] + "X", REFERENCE_HASH)


def test_new_hashes_are_written_in_our_form_only() -> None:
    salt = bytes.fromhex("00112233445566778899aabbccddeeff")
    assert hash_api_key(NODE_KEY, salt=salt) != REFERENCE_HASH


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
