"""``scripts/uvw.py``: serving runs in a runtime-only environment; the rest passes through."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

_Invocation = Callable[[list[str], Mapping[str, str]], tuple[list[str], dict[str, str]]]


def uv_invocation() -> _Invocation:
    path = Path(__file__).resolve().parent.parent / "scripts" / "uvw.py"
    spec = importlib.util.spec_from_file_location("uvw", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast("_Invocation", module.uv_invocation)


def test_running_the_command_uses_its_own_environment_without_the_dev_group() -> None:
    args, env = uv_invocation()(["run", "better-ccflare", "serve"], {"PATH": "/bin"})
    assert args == ["run", "--no-dev", "--package", "better-ccflare", "better-ccflare", "serve"]
    assert env == {"PATH": "/bin", "UV_PROJECT_ENVIRONMENT": ".venv-serve"}


def test_a_chosen_environment_wins() -> None:
    _, env = uv_invocation()(["run", "better-ccflare"], {"UV_PROJECT_ENVIRONMENT": "/tmp/e"})
    assert env["UV_PROJECT_ENVIRONMENT"] == "/tmp/e"


def test_tests_and_other_uv_commands_pass_through_unchanged() -> None:
    for args in (["run", "pytest"], ["sync", "--all-packages"], ["run", "--locked", "pyright"]):
        assert uv_invocation()(args, {}) == (args, {})
