"""PKCE pairs and OAuth state (RFC 7636)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from better_ccflare.providers._pkce import PkcePair, generate_pkce, generate_state

# RFC 7636 appendix B: the 32 octets, the verifier they encode to, and its S256 challenge.
RFC_OCTETS = bytes(
    [116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186,
     22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121]
)  # fmt: skip
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_challenge_of_the_rfc_verifier_matches_appendix_b() -> None:
    pair = PkcePair.from_verifier(RFC_VERIFIER)

    assert pair.challenge == RFC_CHALLENGE
    assert pair.method == "S256"


def test_generated_verifier_is_base64url_of_32_random_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def rfc_octets(n: int) -> bytes:
        return RFC_OCTETS[:n]

    monkeypatch.setattr("secrets.token_bytes", rfc_octets)

    pair = generate_pkce()

    assert pair.verifier == RFC_VERIFIER
    assert pair.challenge == RFC_CHALLENGE


def test_generated_pairs_are_43_characters_unpadded_and_consistent() -> None:
    pair = generate_pkce()

    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", pair.verifier)
    digest = hashlib.sha256(pair.verifier.encode()).digest()
    assert pair.challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert "=" not in pair.challenge


def test_generated_pairs_differ() -> None:
    assert generate_pkce().verifier != generate_pkce().verifier


def test_repr_hides_the_verifier() -> None:
    pair = PkcePair.from_verifier(RFC_VERIFIER)

    assert RFC_VERIFIER not in repr(pair)
    assert RFC_CHALLENGE in repr(pair)


@pytest.mark.parametrize("verifier", ["short", "a" * 129, "a" * 42 + "!"])
def test_from_verifier_rejects_what_rfc_7636_does_not_allow(verifier: str) -> None:
    with pytest.raises(ValueError, match="43 to 128"):
        PkcePair.from_verifier(verifier)


def test_state_is_64_random_hex_characters() -> None:
    state = generate_state()

    assert re.fullmatch(r"[0-9a-f]{64}", state)
    assert state != generate_state()
