"""Running ``better-ccflare`` as a user would, against a data directory of the test's own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from click.testing import CliRunner, Result

from better_ccflare.cli import main
from better_ccflare.core import Account, load_config
from better_ccflare.database import Store

_T = TypeVar("_T")


class Cli:
    """Runs ``better-ccflare`` as a user would, with its data under ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}

    @property
    def data_dir(self) -> Path:
        return self.tmp_path / "xdg" / "better-ccflare"

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        return CliRunner().invoke(main, list(args), env={**self.env, **env}, input=input)

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self(*args, input=input)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def with_store(self, work: Callable[[Store], Awaitable[_T]]) -> _T:
        async def run() -> _T:
            config = load_config(self.env, cwd=self.tmp_path)
            async with await Store.from_config(config) as store:
                return await work(store)

        return asyncio.run(run())

    def accounts(self) -> list[Account]:
        return self.with_store(lambda store: store.accounts.list_all())

    def account(self, name: str) -> Account:
        [found] = [a for a in self.accounts() if a.name == name]
        return found
