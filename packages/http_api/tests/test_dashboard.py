"""The dashboard's routes and headers, served by a bare Litestar app (no service needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from better_ccflare.http_api import (
    DASHBOARD_PAGES,
    DASHBOARD_SECURITY_HEADERS,
    DashboardPage,
    dashboard_handlers,
)

ASSETS = Path(__file__).parents[1] / "src/better_ccflare/http_api/dashboard/assets"


@pytest.fixture
def client() -> Iterator[TestClient[Litestar]]:
    with TestClient(Litestar(route_handlers=dashboard_handlers())) as test_client:
        yield test_client


@pytest.mark.parametrize("path", [path for page in DASHBOARD_PAGES for path in page.paths])
def test_every_page_is_html_with_the_security_headers(
    client: TestClient[Litestar], path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for name, value in DASHBOARD_SECURITY_HEADERS.items():
        assert response.headers[name] == value


def test_the_policy_allows_no_inline_script_and_no_framing() -> None:
    policy = dict(
        part.split(" ", 1)
        for part in DASHBOARD_SECURITY_HEADERS["content-security-policy"].split("; ")
    )
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy["style-src"]


@pytest.mark.parametrize("page", DASHBOARD_PAGES, ids=lambda p: p.name)
def test_each_page_marks_itself_current_and_loads_only_external_scripts(
    client: TestClient[Litestar], page: DashboardPage
) -> None:
    html = client.get(page.paths[0]).text
    assert f'<body data-page="{page.name}">' in html
    assert html.count('aria-current="page"') == 1
    assert f'<a href="{page.paths[0]}" aria-current="page">' in html
    assert "<script>" not in html
    assert 'style="' not in html
    assert "{{" not in html
    assert (ASSETS / "pages" / f"{page.name}.js").is_file()


def test_assets_are_served_with_their_types_and_headers(client: TestClient[Litestar]) -> None:
    script = client.get("/dashboard/assets/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.headers["x-content-type-options"] == "nosniff"
    assert client.get("/dashboard/assets/style.css").headers["content-type"].startswith("text/css")
    chart = client.get("/dashboard/assets/vendor/chart.umd.min.js")
    assert chart.status_code == 200
    assert b"Chart.js v4" in chart.content[:200]


def test_the_vendored_chart_library_ships_with_its_license() -> None:
    assert "MIT" in (ASSETS / "vendor" / "chart.js.LICENSE.md").read_text()


def test_unknown_assets_are_404_and_paths_cannot_escape(client: TestClient[Litestar]) -> None:
    assert client.get("/dashboard/assets/missing.js").status_code == 404
    assert client.get("/dashboard/assets/../_dashboard.py").status_code == 404
    assert client.get("/dashboard/assets/%2e%2e/layout.html").status_code == 404


def test_the_vendored_api_docs_bundle_is_served_and_ships_with_its_license(
    client: TestClient[Litestar],
) -> None:
    scalar = client.get("/dashboard/assets/vendor/scalar-api-reference.standalone.js")
    assert scalar.status_code == 200
    assert "javascript" in scalar.headers["content-type"]
    assert b"window.Scalar=" in scalar.content[-400:]
    assert "MIT" in (ASSETS / "vendor" / "scalar-api-reference.LICENSE.md").read_text()
    assert "1.76.4" in (ASSETS / "vendor" / "README.md").read_text()
