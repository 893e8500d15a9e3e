"""The .env reader."""

from __future__ import annotations

from pathlib import Path

from better_ccflare.core import parse_dotenv, read_dotenv


def test_plain_assignments_comments_and_export() -> None:
    text = "# comment\nPORT=8081\n\nexport LOG_LEVEL=DEBUG\nnot a line\n"
    assert parse_dotenv(text) == {"PORT": "8081", "LOG_LEVEL": "DEBUG"}


def test_quotes_and_inline_comments() -> None:
    text = 'A=\'x # y\'\nB="line\\nnext \\"q\\""\nC=value # trailing\nD=a#b\n'
    assert parse_dotenv(text) == {"A": "x # y", "B": 'line\nnext "q"', "C": "value", "D": "a#b"}


def test_dollar_signs_are_kept_literally() -> None:
    assert parse_dotenv("KEY=$HOME/x") == {"KEY": "$HOME/x"}


def test_later_assignment_wins() -> None:
    assert parse_dotenv("A=1\nA=2") == {"A": "2"}


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_dotenv(tmp_path / ".env") == {}
