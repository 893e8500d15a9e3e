"""Tables at an 80-column terminal: every line fits, and what matters is still there.

Each command runs with ``COLUMNS=80`` against a database holding long names, a long model id,
a long error and usage readings, the values that used to push tables past the edge.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.cli._output import Col, fitted_widths, format_relative
from better_ccflare.core import (
    Account,
    RateLimitReason,
    RateLimitState,
    RequestRecord,
    SystemClock,
    TokenUsage,
    UsageSnapshot,
    UsageWindow,
)
from better_ccflare.database import Store

from .cli_support import Cli

NOW = SystemClock().now_ms()
HOUR_MS = 3_600_000
LONG_NAME = "research-team-shared-subscription-number-two"
LONG_MODEL = "claude-sonnet-4-5-20250929-with-a-very-long-deployment-suffix[1m]"
LONG_ERROR = "upstream overloaded: " + "the server is busy, please retry later " * 4


@pytest.fixture
def busy(cli: Cli) -> Cli:
    """Three accounts (one benched, one with usage near its limit), requests, an error."""

    now = SystemClock().now_ms()  # at the test's start: relative times are read against it

    async def write(store: Store) -> None:
        await store.accounts.add(
            Account(
                id="a1",
                name=LONG_NAME,
                provider="anthropic",
                created_at_ms=now - 48 * HOUR_MS,
                last_used_ms=now - 180_000,
                request_count=12345,
            )
        )
        await store.accounts.add(
            Account(id="a2", name="console-key", provider="claude-console-api", created_at_ms=0)
        )
        await store.accounts.add(
            Account(id="a3", name="gw", provider="anthropic-compatible", created_at_ms=0)
        )
        await store.accounts.update_rate_limit(
            "a2",
            RateLimitState(
                limited_until_ms=now + 2 * HOUR_MS,
                reason=RateLimitReason.UPSTREAM_429_WITH_RESET,
            ),
        )
        await store.usage.record(
            UsageSnapshot(
                account_id="a1",
                timestamp_ms=now - 60_000,
                windows=(
                    UsageWindow(key="five_hour", utilization=93.4, resets_at_ms=now + HOUR_MS),
                    UsageWindow(key="seven_day", utilization=41.0, resets_at_ms=now + 96 * HOUR_MS),
                ),
            )
        )
        for i, ok in enumerate((True, False, True)):
            store.requests.record(
                RequestRecord(
                    id=f"r{i}",
                    timestamp_ms=now - (i + 1) * 60_000,
                    method="POST",
                    path="/v1/messages",
                    account_id="a1",
                    status_code=200 if ok else 529,
                    success=ok,
                    error_message=None if ok else LONG_ERROR,
                    response_time_ms=1200,
                    model=LONG_MODEL,
                    usage=TokenUsage(input_tokens=123_456, output_tokens=7_890),
                    cost_usd=0.25,
                )
            )
        await store.flush()

    cli.with_store(write)
    return cli


def narrow(cli: Cli, *args: str) -> str:
    result = cli(*args, COLUMNS="80")
    assert result.exit_code == 0, result.output
    too_wide = [line for line in result.stdout.splitlines() if len(line) > 80]
    assert not too_wide, "\n".join(too_wide)
    return result.stdout


def test_account_list_fits_80_columns_with_state_usage_and_relative_times(busy: Cli) -> None:
    table = narrow(busy, "account", "list")
    row = next(line for line in table.splitlines() if line.startswith("research-team"))
    assert "…" in row  # the long name is cut, not wrapped onto another line
    assert "93%" in row
    assert "41%" in row
    assert "3m ago" in row
    assert "active" in row
    benched = next(line for line in table.splitlines() if line.startswith("console-key"))
    assert "rate-limited, ends in 2h" in benched
    assert "\x1b[" not in table  # no colour codes when stdout is not a terminal


def test_account_show_lists_every_usage_window_within_80_columns(busy: Cli) -> None:
    shown = narrow(busy, "account", "show", "a1")
    assert "usage five_hour" in shown
    assert "93% (resets in 1h)" in shown
    assert "41% (resets in 4d)" in shown
    assert "3m ago" in shown


def test_usage_is_in_the_json_of_list_and_show(busy: Cli) -> None:
    [row] = [r for r in busy.json("account", "list") if r["id"] == "a1"]
    assert [(w["key"], w["utilization"]) for w in row["usage"]] == [
        ("five_hour", 93.4),
        ("seven_day", 41.0),
    ]
    detail = busy.json("account", "show", "a1")
    assert detail["usage"] == row["usage"]
    assert detail["usage_read_at_ms"] == row["usage_read_at_ms"]
    assert SystemClock().now_ms() - row["usage_read_at_ms"] >= 60_000


def test_a_window_whose_reset_has_passed_shows_no_percentage(cli: Cli) -> None:
    async def write(store: Store) -> None:
        await store.accounts.add(Account(id="a1", name="me", provider="anthropic", created_at_ms=0))
        window = UsageWindow(key="five_hour", utilization=100.0, resets_at_ms=NOW - 1000)
        await store.usage.record(UsageSnapshot(account_id="a1", timestamp_ms=0, windows=(window,)))

    cli.with_store(write)
    row = narrow(cli, "account", "list").splitlines()[1]
    assert "100%" not in row


@pytest.mark.parametrize(
    ("args", "present"),
    [
        (("requests",), ("529", "2m ago", "claude-sonnet", "123k/7.9k")),
        (("stats",), ("By model", "claude-sonnet", "Recent errors", "upstream overloaded")),
        (("account", "types"), ("anthropic-compatible", "vertex-ai")),
        (("token-health",), ("console-key",)),
        (("config", "show"), ("lb_strategy",)),
        (("strategy", "get"), ("session-drain-soonest",)),
        (("api-key", "list"), ()),
        (("agent", "list"), ()),
    ],
)
def test_every_table_fits_80_columns(
    busy: Cli, args: tuple[str, ...], present: tuple[str, ...]
) -> None:
    text = narrow(busy, *args)
    for expected in present:
        assert expected in text, expected


def test_a_redirected_table_without_columns_keeps_values_whole(busy: Cli) -> None:
    result = busy.ok("account", "list")
    assert LONG_NAME in result.stdout
    json_output = busy.json("requests")
    assert json.dumps(json_output).count(LONG_MODEL) == 3


# --------------------------------------------------------------------------- the helpers


@given(
    st.lists(st.tuples(st.integers(1, 120), st.booleans()), min_size=1, max_size=10),
    st.integers(40, 200),
)
def test_fitted_widths_fit_the_room_when_the_flexible_columns_can_give_way(
    spec: list[tuple[int, bool]], room: int
) -> None:
    cols = [Col(f"C{i}", flex=flex) for i, (_, flex) in enumerate(spec)]
    natural = [width for width, _ in spec]
    widths = fitted_widths(cols, natural, room)
    final = [n if w is None else w for n, w in zip(natural, widths, strict=True)]
    assert all(f <= n for f, n in zip(final, natural, strict=True))
    if sum(natural) <= room:
        assert final == natural
        return
    fixed = sum(n for n, (_, flex) in zip(natural, spec, strict=True) if not flex)
    flexible = sum(flex for _, flex in spec) or len(spec)
    if room - (fixed if any(f for _, f in spec) else 0) >= 6 * flexible:
        assert sum(final) <= room


@pytest.mark.parametrize(
    ("offset_ms", "text"),
    [
        (0, "now"),
        (-5_000, "5s ago"),
        (-180_000, "3m ago"),
        (2 * HOUR_MS, "in 2h"),
        (HOUR_MS - 1_000, "in 1h"),
        (-3 * 24 * HOUR_MS, "3d ago"),
    ],
)
def test_relative_times_read_at_a_glance(offset_ms: int, text: str) -> None:
    assert format_relative(NOW + offset_ms, NOW) == text
    assert format_relative(None, NOW) == "-"


def on_a_terminal(cli: Cli, *args: str, **env: str) -> str:
    """Run the installed command with stdout on a pseudo-terminal 80 columns wide."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    command = Path(sys.executable).parent / "better-ccflare"
    environ = {"PATH": os.environ["PATH"], "TERM": "xterm-256color", **cli.env, **env}
    with subprocess.Popen(
        [str(command), *args], stdout=follower, stderr=subprocess.DEVNULL, env=environ
    ) as process:
        os.close(follower)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the command is done
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0
    os.close(leader)
    return b"".join(chunks).decode()


def test_state_and_usage_are_coloured_on_a_terminal_unless_no_color(busy: Cli) -> None:
    coloured = on_a_terminal(busy, "account", "list")
    assert "\x1b[32mactive" in coloured  # green: serving
    assert "\x1b[33mrate-limited" in coloured  # yellow: waiting
    assert "\x1b[31m93%" in coloured  # red: the window is nearly spent
    lines = [line for line in coloured.splitlines() if line.strip()]
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in lines]
    assert max(len(line) for line in plain) <= 80
    uncoloured = on_a_terminal(busy, "account", "list", NO_COLOR="1")
    assert "active" in uncoloured
    assert not re.search(r"\x1b\[[0-9;]*3[0-7]m", uncoloured)  # bold headers, no colour
