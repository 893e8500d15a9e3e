"""The workspace's shape: what each distribution may depend on, and what each one ships.

The dependency direction is an architectural rule (core <- logger, database, providers,
load_balancer <- proxy <- http_api <- server <- cli); each layer may depend on any layer below
it. These tests make breaking it a test failure rather than a review comment.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = sorted(p.parent for p in ROOT.glob("packages/*/pyproject.toml")) + sorted(
    p.parent for p in ROOT.glob("apps/*/pyproject.toml")
)

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"better-ccflare-core"}),
    frozenset(
        {
            "better-ccflare-logger",
            "better-ccflare-database",
            "better-ccflare-providers",
            "better-ccflare-load-balancer",
        }
    ),
    frozenset({"better-ccflare-proxy"}),
    frozenset({"better-ccflare-http-api"}),
    frozenset({"better-ccflare-server"}),
    frozenset({"better-ccflare"}),
)
"""The distributions bottom up; members of one layer never depend on each other."""

ALLOWED_SIBLINGS: dict[str, set[str]] = {
    name: set[str]().union(*LAYERS[:height])
    for height, layer in enumerate(LAYERS)
    for name in layer
}
"""What each distribution may depend on: any distribution in a layer below its own."""


class Project(msgspec.Struct):
    name: str
    dependencies: list[str] = msgspec.field(default_factory=list[str])


class PyProject(msgspec.Struct):
    project: Project


def project(member: Path) -> Project:
    return msgspec.toml.decode((member / "pyproject.toml").read_bytes(), type=PyProject).project


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None
    return match.group(0).lower()


def test_every_distribution_is_a_member() -> None:
    names = {project(m).name for m in MEMBERS}
    assert names == set(ALLOWED_SIBLINGS)


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.name)
def test_sibling_dependencies_point_one_way_and_are_bounded(member: Path) -> None:
    meta = project(member)
    requirements = meta.dependencies
    siblings = {
        requirement_name(r): r
        for r in requirements
        if requirement_name(r).startswith("better-ccflare")
    }
    assert set(siblings) <= ALLOWED_SIBLINGS[meta.name]
    for requirement in siblings.values():
        assert ">=" in requirement, requirement
        assert "<" in requirement.replace("<=", ""), requirement


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.name)
def test_member_ships_typed_namespace_package_and_readme(member: Path) -> None:
    packages = list((member / "src" / "better_ccflare").iterdir())
    assert not (member / "src" / "better_ccflare" / "__init__.py").exists(), "namespace package"
    assert len(packages) == 1
    assert (packages[0] / "py.typed").is_file()
    assert (packages[0] / "__init__.py").is_file()
    assert (member / "README.md").read_text().strip()


def test_provider_library_imports_without_server_dependencies() -> None:
    """People pip-install only the provider library; it must not drag in the server stack."""
    code = (
        "import sys, better_ccflare.providers; "
        "print(','.join(m for m in ('litestar', 'sqlite_utils', 'click') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
