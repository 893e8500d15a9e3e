"""Overridable upstream URLs: environment overrides and their documentation."""

from __future__ import annotations

from pathlib import Path

from better_ccflare.providers import Endpoint
from better_ccflare.providers._registry import ENDPOINTS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_first_set_override_wins_and_trailing_slash_is_dropped() -> None:
    endpoint = Endpoint(("A", "B"), "https://default.example", "test")
    assert endpoint.url({}) == "https://default.example"
    assert endpoint.url({"B": "http://127.0.0.1:9/"}) == "http://127.0.0.1:9"
    assert endpoint.url({"A": "http://a", "B": "http://b"}) == "http://a"
    assert endpoint.url({"A": "  ", "B": "http://b"}) == "http://b"


def test_readme_documents_every_overridable_endpoint() -> None:
    readme = README.read_text()
    missing = [name for endpoint in ENDPOINTS for name in endpoint.env if name not in readme]
    assert missing == []
