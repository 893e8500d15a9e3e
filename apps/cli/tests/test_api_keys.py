"""``better-ccflare api-key ...`` against a real database."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from better_ccflare.cli import main
from better_ccflare.proxy import looks_like_api_key


def run(tmp_path: Path, *args: str, stdin: str | None = None) -> Result:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    return CliRunner().invoke(main, ["api-key", *args], env=env, input=stdin)


def listed(tmp_path: Path) -> list[dict[str, object]]:
    return json.loads(run(tmp_path, "list", "--json").output)


def test_generate_prints_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    result = run(tmp_path, "generate", "laptop")
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert looks_like_api_key(key)
    [row] = listed(tmp_path)
    assert row["role"] == "admin"
    assert row["prefix_last_8"] == key[-8:]
    assert key not in run(tmp_path, "list").output
    db = tmp_path / "xdg" / "better-ccflare" / "better-ccflare.db"
    assert key.encode() not in db.read_bytes()


def test_the_first_key_must_be_admin_and_later_ones_default_to_api_only(tmp_path: Path) -> None:
    refused = run(tmp_path, "generate", "ci", "--role", "api-only")
    assert refused.exit_code == 2
    assert "first key must be an admin key" in refused.output
    assert run(tmp_path, "generate", "me").exit_code == 0
    assert run(tmp_path, "generate", "ci").exit_code == 0
    assert {(r["name"], r["role"]) for r in listed(tmp_path)} == {
        ("me", "admin"),
        ("ci", "api-only"),
    }


def test_the_last_active_admin_key_is_protected(tmp_path: Path) -> None:
    run(tmp_path, "generate", "me")
    for args in (("disable", "me"), ("delete", "me", "--yes")):
        result = run(tmp_path, *args)
        assert result.exit_code == 2
        assert "last active admin key" in result.output
    run(tmp_path, "generate", "spare", "--role", "admin")
    assert run(tmp_path, "disable", "me").exit_code == 0
    assert run(tmp_path, "delete", "spare", "--yes").exit_code == 2


def test_disable_enable_and_delete(tmp_path: Path) -> None:
    run(tmp_path, "generate", "me")
    run(tmp_path, "generate", "ci")
    assert run(tmp_path, "disable", "ci").exit_code == 0
    assert {r["name"]: r["active"] for r in listed(tmp_path)} == {"me": True, "ci": False}
    assert run(tmp_path, "enable", "ci").exit_code == 0
    assert run(tmp_path, "delete", "ci", stdin="y\n").exit_code == 0
    assert [r["name"] for r in listed(tmp_path)] == ["me"]
    missing = run(tmp_path, "disable", "ghost")
    assert missing.exit_code == 2
    assert "api-key list" in missing.output


def test_generate_prints_only_the_key_on_stdout(tmp_path: Path) -> None:
    result = run(tmp_path, "generate", "laptop")
    assert result.exit_code == 0, result.output
    assert looks_like_api_key(result.stdout.strip())
    assert result.stdout.count("\n") == 1
    assert "shown only this once" in result.stderr


def test_generate_json_gives_the_key_with_its_id_name_and_role(tmp_path: Path) -> None:
    result = run(tmp_path, "generate", "laptop", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert looks_like_api_key(created["key"])
    assert (created["name"], created["role"]) == ("laptop", "admin")
    [row] = listed(tmp_path)
    assert row["id"] == created["id"]
