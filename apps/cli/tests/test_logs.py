"""``better-ccflare logs``: the server's log file read back, and followed with ``-f``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .cli_support import Cli


def log_line(second: int, msg: str, level: str = "INFO") -> str:
    event = {
        "ts": f"2026-01-02T03:04:{second:02d}.000Z",
        "level": level,
        "logger": "better_ccflare.proxy",
        "msg": msg,
    }
    return json.dumps(event) + "\n"


def write_log(cli: Cli, *lines: str) -> Path:
    log = cli.data_dir / "logs" / "app.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.writelines(lines)
    return log


def test_logs_prints_the_last_events_oldest_first(cli: Cli) -> None:
    write_log(cli, *(log_line(i, f"event {i}") for i in range(5)))
    result = cli.ok("logs", "-n", "2")
    assert result.stdout.splitlines() == [
        "2026-01-02 03:04:03 INFO  [better_ccflare.proxy] event 3",
        "2026-01-02 03:04:04 INFO  [better_ccflare.proxy] event 4",
    ]


def test_logs_json_is_one_event_a_line(cli: Cli) -> None:
    write_log(cli, log_line(1, "hello", level="WARN"))
    [line] = cli.ok("logs", "--json").stdout.splitlines()
    event = json.loads(line)
    assert (event["level"], event["msg"], event["ts_ms"]) == ("WARN", "hello", 1767323041000)


def test_logs_without_a_log_file_says_so(cli: Cli) -> None:
    result = cli.ok("logs")
    assert result.stdout == ""
    assert "No log events" in result.stderr


def test_logs_follow_prints_what_the_server_writes_next(cli: Cli) -> None:
    log = write_log(cli, log_line(1, "before"))
    with subprocess.Popen(
        [sys.executable, "-c", "from better_ccflare.cli import main; main()", "logs", "-f"],
        env={**os.environ, **cli.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        try:
            assert process.stdout.readline().endswith("before\n")
            with log.open("a") as handle:
                handle.write(log_line(2, "after"))
            assert process.stdout.readline().endswith("after\n")
        finally:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "Traceback" not in err
