"""``better-ccflare account ...`` against a real database."""

from __future__ import annotations

import json

import pytest

from better_ccflare.core import RateLimitReason, RateLimitState, SystemClock

from .cli_support import Cli

KEY = "sk-ant-api03-secret-value-123"


def add_key_account(cli: Cli, name: str, *extra: str, mode: str = "console") -> None:
    cli.ok("account", "add", name, "--mode", mode, "--api-key", KEY, *extra)


# --------------------------------------------------------------------------- add


def test_add_stores_the_account_with_its_key(cli: Cli) -> None:
    result = cli.ok(
        "account", "add", "work", "--mode", "console", "--api-key", KEY, "--priority", "2"
    )
    assert KEY not in result.output
    account = cli.account("work")
    assert (account.provider, account.priority) == ("claude-console-api", 2)
    assert account.credentials.api_key == KEY


@pytest.mark.parametrize("mode", ["claude-console-api", "console"])
def test_a_type_is_taken_by_its_name_or_its_older_alias_and_shown_by_its_name(
    cli: Cli, mode: str
) -> None:
    result = cli.ok("account", "add", "work", "--mode", mode, "--api-key", KEY)
    assert "Added claude-console-api account 'work'" in result.output
    assert cli.account("work").provider == "claude-console-api"
    assert cli.json("account", "list")[0]["provider"] == "claude-console-api"


def test_the_subscription_type_refuses_a_key_by_any_of_its_names(cli: Cli) -> None:
    for mode in ("anthropic", "claude-oauth", "max"):
        result = cli("account", "add", "me", "--mode", mode, "--api-key", KEY)
        assert result.exit_code == 2
        assert "--api-key: is not accepted for anthropic accounts" in result.output


def test_account_types_names_each_type_once_and_its_older_names_after(cli: Cli) -> None:
    listed = cli.ok("account", "types").output
    assert "Claude subscription" in listed
    assert (
        "Older names --mode still takes: claude-oauth, max for anthropic; console for "
        "claude-console-api." in " ".join(listed.split())
    )


def test_an_unknown_type_lists_the_types_by_their_one_name(cli: Cli) -> None:
    result = cli("account", "add", "x", "--mode", "bedrock")
    assert result.exit_code == 2
    assert "'anthropic', 'claude-console-api'" in result.output
    assert "claude-oauth" not in result.output


def test_a_missing_key_is_prompted_for_without_echo(cli: Cli) -> None:
    result = cli.ok("account", "add", "glm", "--mode", "zai", input=f"{KEY}\n")
    assert "API key for glm" in result.output
    assert KEY not in result.output
    assert cli.account("glm").credentials.api_key == KEY


def test_a_missing_mode_is_prompted_for(cli: Cli) -> None:
    cli.ok("account", "add", "mm", input=f"minimax\n{KEY}\n")
    assert cli.account("mm").provider == "minimax"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("account", "add", "work"), "--mode"),
        (("account", "add", "work", "--mode", "zai"), "--api-key"),
        (("account", "add", "gcp", "--mode", "vertex-ai"), "--project-id"),
    ],
)
def test_a_missing_flag_without_a_terminal_is_an_error_naming_it(
    cli: Cli, args: tuple[str, ...], flag: str
) -> None:
    result = cli(*args)  # no input: stdin is not a terminal and ends at once
    assert result.exit_code == 2, result.output
    assert "Aborted" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: missing {flag}: give it")
    assert cli.accounts() == []


def test_anthropic_compatible_asks_for_its_endpoint_and_checks_it(cli: Cli) -> None:
    args = ("account", "add", "gw", "--mode", "anthropic-compatible", "--api-key", KEY)
    cli.ok(*args, input="https://gateway.example/\n")
    assert cli.account("gw").custom_endpoint == "https://gateway.example"
    refused = cli(*args, "--endpoint", "gateway.example")
    assert refused.exit_code == 2
    assert "--endpoint" in refused.output
    assert "http(s) URL" in refused.output


def test_fixed_address_providers_refuse_an_endpoint(cli: Cli) -> None:
    result = cli(
        "account", "add", "glm", "--mode", "zai", "--api-key", KEY, "--endpoint", "https://x"
    )
    assert result.exit_code == 2
    assert "--endpoint: is not accepted for zai accounts" in result.output
    assert cli.accounts() == []


def test_model_maps_are_stored_in_order(cli: Cli) -> None:
    add_key_account(
        cli,
        "local",
        "--model-map",
        "sonnet=qwen3-coder, qwen2.5",
        "--model-map",
        "claude-opus-4-1=llama",
        mode="openai-compatible",
    )
    assert cli.account("local").model_mappings == {
        "sonnet": ("qwen3-coder", "qwen2.5"),
        "claude-opus-4-1": ("llama",),
    }


@pytest.mark.parametrize("bad", ["sonnet", "=x", "sonnet=", "sonnet=a,,b"])
def test_a_malformed_model_map_is_a_usage_error(cli: Cli, bad: str) -> None:
    result = cli("account", "add", "a", "--mode", "zai", "--api-key", KEY, "--model-map", bad)
    assert result.exit_code == 2
    assert "--model-map" in result.output
    assert cli.accounts() == []


def test_vertex_takes_project_and_region_from_flags_or_prompts(cli: Cli) -> None:
    cli.ok(
        "account",
        "add",
        "gcp",
        "--mode",
        "vertex-ai",
        "--project-id",
        "proj-1",
        "--region",
        "us-east5",
    )
    assert json.loads(cli.account("gcp").custom_endpoint or "") == {
        "projectId": "proj-1",
        "region": "us-east5",
    }
    cli.ok("account", "add", "gcp2", "--mode", "vertex-ai", input="proj-2\nglobal\n")
    assert json.loads(cli.account("gcp2").custom_endpoint or "")["region"] == "global"
    bad = cli(
        "account", "add", "gcp3", "--mode", "vertex-ai", "--project-id", "p", "--region", "US East"
    )
    assert bad.exit_code == 2
    assert "--region" in bad.output


def test_a_bad_name_is_refused_before_anything_is_asked(cli: Cli) -> None:
    result = cli("account", "add", "a/b", "--mode", "zai")
    assert result.exit_code == 2
    assert "NAME: contains '/'" in result.output
    assert "API key" not in result.output


def test_login_only_applies_to_console_without_a_key(cli: Cli) -> None:
    for args in (("--mode", "zai", "--login"), ("--mode", "console", "--login", "--api-key", KEY)):
        result = cli("account", "add", "a", *args)
        assert result.exit_code == 2
        assert "--login" in result.output
    assert cli.accounts() == []


def test_a_duplicate_name_is_refused_in_one_line(cli: Cli) -> None:
    add_key_account(cli, "work")
    again = cli("account", "add", "work", "--mode", "console", "--api-key", KEY)
    assert again.exit_code == 2
    assert "Traceback" not in again.output
    assert "Account name 'work' is already taken" in again.output


# --------------------------------------------------------------------------- reading


def test_list_prints_json_and_a_table_without_credentials(cli: Cli) -> None:
    add_key_account(cli, "b", "--priority", "1", mode="minimax")
    add_key_account(cli, "a", mode="minimax")
    rows = cli.json("account", "list")
    assert [(r["name"], r["priority"], r["provider"]) for r in rows] == [
        ("a", 0, "minimax"),
        ("b", 1, "minimax"),
    ]
    table = cli.ok("account", "list").output
    assert "active" in table
    assert KEY not in table + json.dumps(rows)


def test_list_without_accounts_says_how_to_add_one(cli: Cli) -> None:
    assert "account add" in cli.ok("account", "list").output
    assert cli.json("account", "list") == []


def test_show_describes_an_account_without_its_secrets(cli: Cli) -> None:
    add_key_account(cli, "gw", "--endpoint", "https://gw.example", mode="anthropic-compatible")
    shown = cli.json("account", "show", "gw")
    assert shown["name"] == "gw"
    assert shown["credential"] == "api-key"
    assert shown["custom_endpoint"] == "https://gw.example"
    assert shown["state"] == "active"
    by_id = cli.json("account", "show", shown["id"])
    assert by_id == shown
    table = cli.ok("account", "show", "gw").output
    assert "https://gw.example" in table
    assert KEY not in table + json.dumps(shown)


def test_commands_on_an_unknown_account_fail_in_one_line(cli: Cli) -> None:
    for args in (
        ("show", "ghost"),
        ("pause", "ghost"),
        ("resume", "ghost"),
        ("rename", "ghost", "spirit"),
        ("set-priority", "ghost", "1"),
        ("edit", "ghost", "--priority", "1"),
        ("reset-rate-limit", "ghost"),
        ("reauth", "ghost"),
        ("remove", "ghost", "--yes"),
    ):
        result = cli("account", *args)
        assert result.exit_code == 2, args
        assert "No account named 'ghost'" in result.output
        assert "account list" in result.output


# --------------------------------------------------------------------------- changing


def test_pause_and_resume(cli: Cli) -> None:
    add_key_account(cli, "work")
    assert "Paused 'work'" in cli.ok("account", "pause", "work").output
    account = cli.account("work")
    assert account.paused
    assert account.pause_reason == "manual"
    assert "paused (manual)" in cli.ok("account", "list").output
    cli.ok("account", "resume", "work")
    assert not cli.account("work").paused


def test_rename_keeps_the_account_and_checks_the_new_name(cli: Cli) -> None:
    add_key_account(cli, "old")
    before = cli.account("old")
    cli.ok("account", "rename", "old", "new name")
    after = cli.account("new name")
    assert (after.id, after.credentials) == (before.id, before.credentials)
    refused = cli("account", "rename", "new name", "bad;name")
    assert refused.exit_code == 2
    assert "NEW: contains ';'" in refused.output


def test_set_priority_accepts_0_to_100(cli: Cli) -> None:
    add_key_account(cli, "work")
    cli.ok("account", "set-priority", "work", "42")
    assert cli.account("work").priority == 42
    refused = cli("account", "set-priority", "work", "101")
    assert refused.exit_code == 2
    assert cli.account("work").priority == 42


def test_edit_changes_only_the_settings_given_and_says_what_changed(cli: Cli) -> None:
    add_key_account(cli, "gw", "--endpoint", "https://gw.example", mode="anthropic-compatible")
    result = cli.ok(
        "account", "edit", "gw",
        "--name", "gateway",
        "--priority", "5",
        "--endpoint", "https://gw2.example/",
        "--model-map", "sonnet=glm-4.6,glm-4.5",
        "--auto-fallback",
        "--billing-type", "api",
    )  # fmt: skip
    assert "priority 0 -> 5" in result.output
    assert "auto-fallback off -> on" in result.output
    account = cli.account("gateway")
    assert (account.priority, account.custom_endpoint) == (5, "https://gw2.example")
    assert account.model_mappings == {"sonnet": ("glm-4.6", "glm-4.5")}
    assert (account.auto_fallback_enabled, account.billing_type) == (True, "api")
    assert not account.auto_refresh_enabled
    cli.ok("account", "edit", "gateway", "--no-model-maps", "--billing-type", "auto")
    account = cli.account("gateway")
    assert (account.model_mappings, account.billing_type) == ({}, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--endpoint", "gw.example"), "--endpoint: 'gw.example' is not an http(s) URL"),
        (("--endpoint", ""), "--endpoint: is required for anthropic-compatible accounts"),
        (("--name", "a/b"), "--name: contains '/'"),
        (("--model-map", "sonnet"), "--model-map: 'sonnet' is not FROM=TO"),
        ((), "Nothing to change"),
        (("--priority", "101"), "--priority"),
    ],
)
def test_a_refused_edit_exits_2_naming_the_option_and_changes_nothing(
    cli: Cli, args: tuple[str, ...], message: str
) -> None:
    add_key_account(cli, "gw", "--endpoint", "https://gw.example", mode="anthropic-compatible")
    before = cli.account("gw")
    result = (
        cli("account", "edit", "gw", "--priority", "7", *args)
        if args
        else cli("account", "edit", "gw")
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert cli.account("gw") == before


def test_edit_refuses_a_name_another_account_has(cli: Cli) -> None:
    add_key_account(cli, "work")
    add_key_account(cli, "home")
    result = cli("account", "edit", "home", "--name", "work", "--priority", "3")
    assert result.exit_code == 2
    assert "Account name 'work' is already taken" in result.output
    assert "Traceback" not in result.output
    assert cli.account("home").priority == 0


def test_edit_refuses_an_endpoint_for_a_fixed_address_type(cli: Cli) -> None:
    add_key_account(cli, "glm", mode="zai")
    result = cli("account", "edit", "glm", "--endpoint", "https://x.example")
    assert result.exit_code == 2
    assert "--endpoint: is not accepted for zai accounts" in result.output
    assert cli.account("glm").custom_endpoint is None


def test_reset_rate_limit_makes_a_benched_account_routable(cli: Cli) -> None:
    add_key_account(cli, "work")
    account_id = cli.account("work").id
    until = SystemClock().now_ms() + 3_600_000
    benched = RateLimitState(
        limited_until_ms=until, reason=RateLimitReason.UPSTREAM_429_WITH_RESET, consecutive=2
    )
    cli.with_store(lambda store: store.accounts.update_rate_limit(account_id, benched))
    assert "rate-limited, ends in 1h" in cli.ok("account", "list").output
    cli.ok("account", "reset-rate-limit", "work")
    assert cli.account("work").rate_limit == RateLimitState()
    assert cli.json("account", "show", "work")["state"] == "active"


def test_an_account_whose_credentials_were_refused_says_so_until_reset(cli: Cli) -> None:
    add_key_account(cli, "work")
    account_id = cli.account("work").id
    now = SystemClock().now_ms()
    rejected = RateLimitState(
        limited_until_ms=now + 600_000,
        reason=RateLimitReason.CREDENTIALS_REJECTED,
        limited_at_ms=now,
        failures=1,
    )
    cli.with_store(lambda store: store.accounts.update_rate_limit(account_id, rejected))

    assert "credentials rejected (probe in 10m)" in cli.ok("account", "list").output
    [row] = cli.json("account", "list")
    assert row["account_state"] == "credentials_rejected"
    shown = cli.json("account", "show", "work")
    assert (shown["account_state"], shown["consecutive_failures"]) == ("credentials_rejected", 1)
    assert shown["state"].startswith("credentials rejected")

    cli.ok("account", "reset-rate-limit", "work")
    assert cli.json("account", "show", "work")["account_state"] == "ready"


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        (RateLimitReason.OUT_OF_CREDITS, "out of credits"),
        (RateLimitReason.CONNECT_FAILED, "unreachable, ends in 1m"),
        (RateLimitReason.UPSTREAM_TIMEOUT, "unreachable, ends in 1m"),
    ],
)
def test_the_circuit_breakers_other_benches_are_named_in_the_list(
    cli: Cli, reason: RateLimitReason, said: str
) -> None:
    add_key_account(cli, "work")
    account_id = cli.account("work").id
    now = SystemClock().now_ms()
    benched = RateLimitState(limited_until_ms=now + 60_000, reason=reason, failures=1)
    cli.with_store(lambda store: store.accounts.update_rate_limit(account_id, benched))

    assert said in cli.ok("account", "list").output


def test_reauth_refuses_api_key_accounts(cli: Cli) -> None:
    add_key_account(cli, "glm", mode="zai")
    result = cli("account", "reauth", "glm")
    assert result.exit_code == 2
    assert "uses an API key" in result.output


def test_remove_asks_first(cli: Cli) -> None:
    add_key_account(cli, "work")
    declined = cli("account", "remove", "work", input="n\n")
    assert declined.exit_code == 1
    assert len(cli.accounts()) == 1
    cli.ok("account", "remove", "work", input="y\n")
    assert cli.accounts() == []
