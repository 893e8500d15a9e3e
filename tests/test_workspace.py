"""The workspace's shape: what each distribution may depend on, and what each one ships.

The dependency direction is an architectural rule (core <- logger, database, providers,
load_balancer <- proxy <- http_api <- server <- cli); each layer may depend on any layer below
it. These tests make breaking it a test failure rather than a review comment. It is checked
twice: on the dependencies each ``pyproject.toml`` declares, and on the imports the code really
makes (an AST scan of every member's src tree, which also refuses another package's private
modules).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
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


# --------------------------------------------------------------------------- imports


def own_package(member: Path) -> str:
    """The one package a member ships under the namespace, e.g. ``http_api``."""
    (package,) = (p.name for p in (member / "src" / "better_ccflare").iterdir() if p.is_dir())
    return package


DISTRIBUTION_OF: dict[str, str] = {own_package(m): project(m).name for m in MEMBERS}
"""Package under ``better_ccflare`` to the distribution that ships it (``cli`` is the app's)."""


def _module_name(path: Path, src: Path) -> tuple[str, ...]:
    parts = path.relative_to(src).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_modules(path: Path, src: Path) -> Iterator[tuple[int, str, str]]:
    """Every import in one file as (line, statement, dotted target), relative ones resolved.

    All statements count: module level, inside functions, under ``if TYPE_CHECKING:``. For
    ``from X import a`` the target is ``X.a``, since ``a`` may be a module or a private name.
    """
    module = _module_name(path, src)
    package = module if path.name == "__init__.py" else module[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, ast.unparse(node), alias.name
        elif isinstance(node, ast.ImportFrom):
            anchor = package[: len(package) - node.level + 1] if node.level else ()
            base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                target = base if alias.name == "*" else f"{base}.{alias.name}"
                yield node.lineno, ast.unparse(node), target


def _private(parts: Iterable[str]) -> str | None:
    return next((p for p in parts if p.startswith("_") and not p.startswith("__")), None)


def layering_violations(member: Path) -> list[str]:
    """What a member's src tree imports against the layering, one line each (empty: none).

    A module may import its own package and, of the others, only the public surface of those its
    distribution declares in ``pyproject.toml``; declaring one in a layer above is refused too.
    """
    meta = project(member)
    package = own_package(member)
    declared = {requirement_name(r) for r in meta.dependencies}
    src = member / "src"
    found: list[str] = []
    for path in sorted(src.rglob("*.py")):
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        for line, statement, target in imported_modules(path, src):
            parts = target.split(".")
            if parts[0] != "better_ccflare" or len(parts) < 2 or parts[1] == package:
                continue
            where = f"{shown}:{line}: `{statement}`"
            dependency = DISTRIBUTION_OF.get(parts[1], f"better_ccflare.{parts[1]}")
            if dependency not in ALLOWED_SIBLINGS.get(meta.name, set()):
                found.append(
                    f"{where}: {meta.name} may not depend on {dependency} (not in a layer below)"
                )
            elif dependency not in declared:
                found.append(f"{where}: {dependency} is not declared in {meta.name}'s dependencies")
            private = _private(parts[2:])
            if private is not None:
                found.append(
                    f"{where}: {private} is private to better_ccflare.{parts[1]}; "
                    "import from its public surface"
                )
    return list(dict.fromkeys(found))  # `from x import a, b` breaks a rule once, not twice


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.name)
def test_imports_follow_the_declared_layering(member: Path) -> None:
    violations = layering_violations(member)
    assert not violations, "\n".join(violations)


def _scan_tiny_member(root: Path, package: str, depends_on: Iterable[str], code: str) -> list[str]:
    """Scan a member shipping ``better_ccflare.<package>`` whose only module holds ``code``."""
    member = root / package
    tree = member / "src" / "better_ccflare" / package
    tree.mkdir(parents=True)
    requirements = ", ".join(f'"{d}>=0.1.0,<0.2"' for d in depends_on)
    (member / "pyproject.toml").write_text(
        f'[project]\nname = "{DISTRIBUTION_OF[package]}"\ndependencies = [{requirements}]\n'
    )
    (tree / "__init__.py").write_text("from ._code import *\n")
    (tree / "_code.py").write_text(code)
    return layering_violations(member)


def test_layering_check_reports_a_lower_layer_importing_a_higher_one(tmp_path: Path) -> None:
    code = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import better_ccflare.proxy\n"
    assert _scan_tiny_member(tmp_path, "core", [], code) == [
        f"{tmp_path}/core/src/better_ccflare/core/_code.py:3: `import better_ccflare.proxy`: "
        "better-ccflare-core may not depend on better-ccflare-proxy (not in a layer below)"
    ]


def test_layering_check_reports_a_private_module_of_another_package(tmp_path: Path) -> None:
    code = "def later() -> None:\n    from better_ccflare.providers._usage import HARD_WINDOWS\n"
    assert _scan_tiny_member(tmp_path, "proxy", ["better-ccflare-providers"], code) == [
        f"{tmp_path}/proxy/src/better_ccflare/proxy/_code.py:2: "
        "`from better_ccflare.providers._usage import HARD_WINDOWS`: "
        "_usage is private to better_ccflare.providers; import from its public surface"
    ]


def test_layering_check_resolves_relative_imports(tmp_path: Path) -> None:
    """``..proxy`` seen from ``better_ccflare.http_api`` is ``better_ccflare.proxy``."""
    assert _scan_tiny_member(tmp_path, "http_api", [], "from ..proxy import Dispatcher\n") == [
        f"{tmp_path}/http_api/src/better_ccflare/http_api/_code.py:1: "
        "`from ..proxy import Dispatcher`: "
        "better-ccflare-proxy is not declared in better-ccflare-http-api's dependencies"
    ]


def test_layering_check_reports_an_undeclared_dependency(tmp_path: Path) -> None:
    code = (
        "from better_ccflare.proxy import AccountPool\nfrom better_ccflare.database import Store\n"
    )
    assert _scan_tiny_member(tmp_path, "http_api", ["better-ccflare-proxy"], code) == [
        f"{tmp_path}/http_api/src/better_ccflare/http_api/_code.py:2: "
        "`from better_ccflare.database import Store`: "
        "better-ccflare-database is not declared in better-ccflare-http-api's dependencies"
    ]


def test_layering_check_passes_a_tree_that_keeps_the_rules(tmp_path: Path) -> None:
    code = (
        "import msgspec\n"
        "from better_ccflare.core import Account\n"
        "from better_ccflare.http_api._times import iso_ms\n"
        "from . import _code\n"
    )
    assert _scan_tiny_member(tmp_path, "http_api", ["better-ccflare-core"], code) == []


def _module_files(member: Path) -> set[str]:
    """The member's modules as its README names them: paths below the package directory."""
    package_dir = member / "src" / "better_ccflare" / own_package(member)
    return {
        path.relative_to(package_dir).as_posix()
        for path in package_dir.rglob("*.py")
        if path.name != "__init__.py"
    }


def _readme_table_modules(member: Path) -> set[str]:
    """Every source ``name.py`` the README's tables name (a cell may name several modules)."""
    lines = (member / "README.md").read_text().splitlines()
    rows = (line for line in lines if line.startswith("|"))
    names = {name for row in rows for name in re.findall(r"`([\w/]+\.py)`", row)}
    return {name for name in names if not name.startswith("tests/")}


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.name)
def test_readme_module_table_lists_exactly_the_modules(member: Path) -> None:
    listed = _readme_table_modules(member)
    files = _module_files(member)
    assert listed == files, (
        f"{member.name}/README.md's module table is out of step with src: "
        f"missing {sorted(files - listed)}, not a module {sorted(listed - files)}"
    )
