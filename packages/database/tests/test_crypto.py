"""The credential key: where it comes from, how it is kept, and what it does to values."""

from __future__ import annotations

import base64
import logging
import stat
import threading
from pathlib import Path

import pytest

from better_ccflare.core import ConfigError
from better_ccflare.database import (
    KEY_FILE_NAME,
    CredentialKeyError,
    SecretKey,
    load_or_create_key,
)
from better_ccflare.database._crypto import is_encrypted


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_creates_a_private_key_file_in_a_private_directory(tmp_path: Path) -> None:
    config_dir = tmp_path / "better-ccflare"

    key = load_or_create_key(config_dir, None)

    key_file = config_dir / KEY_FILE_NAME
    assert mode(key_file) == 0o600
    assert mode(config_dir) == 0o700
    assert key_file.read_text().strip() == key.to_text()
    assert key.origin == str(key_file)


def test_later_runs_read_the_same_key(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path, None)
    second = load_or_create_key(tmp_path, None)

    assert second.decrypt(first.encrypt("token")) == "token"


def test_concurrent_first_runs_agree_on_one_key(tmp_path: Path) -> None:
    keys: list[SecretKey] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        keys.append(load_or_create_key(tmp_path, None))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({key.to_text() for key in keys}) == 1
    assert [path.name for path in tmp_path.iterdir()] == [KEY_FILE_NAME]


def test_the_environment_key_wins_over_the_key_file(tmp_path: Path) -> None:
    load_or_create_key(tmp_path, None)
    chosen = SecretKey.generate()

    key = load_or_create_key(tmp_path, chosen.to_text())

    assert key.origin == "BETTER_CCFLARE_SECRET_KEY"
    assert key.decrypt(chosen.encrypt("token")) == "token"


def test_an_environment_key_never_creates_a_key_file(tmp_path: Path) -> None:
    load_or_create_key(tmp_path / "cfg", SecretKey.generate().to_text())

    assert not (tmp_path / "cfg").exists()


def test_url_safe_unpadded_base64_is_accepted(tmp_path: Path) -> None:
    raw = bytes(range(250, 256)) + bytes(26)
    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")

    key = load_or_create_key(tmp_path, text)

    assert key.to_text() == base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    "value", ["", "not base64 at all!", base64.b64encode(bytes(16)).decode()], ids=repr
)
def test_a_malformed_environment_key_is_a_config_error_that_names_the_variable(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_or_create_key(tmp_path, value, env_source=".env")

    assert caught.value.setting == "BETTER_CCFLARE_SECRET_KEY"
    assert caught.value.source == ".env"
    assert "32 random bytes" in str(caught.value)
    if value:
        assert value not in str(caught.value)  # the secret is never echoed


def test_a_damaged_key_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / KEY_FILE_NAME
    key_file.write_text("short\n")
    key_file.chmod(0o600)

    with pytest.raises(ConfigError, match=KEY_FILE_NAME):
        load_or_create_key(tmp_path, None)


def test_a_key_file_readable_by_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load_or_create_key(tmp_path, None)
    (tmp_path / KEY_FILE_NAME).chmod(0o644)

    with caplog.at_level(logging.WARNING, logger="better_ccflare.database"):
        load_or_create_key(tmp_path, None)

    assert "chmod 600" in caplog.text


def test_the_key_repr_does_not_show_the_key() -> None:
    key = SecretKey.generate()

    assert key.to_text() not in repr(key)
    assert "redacted" in repr(key)


def test_encryption_is_randomized_and_reversible() -> None:
    key = SecretKey.generate()

    first, second = key.encrypt("sk-ant-secret"), key.encrypt("sk-ant-secret")

    assert first != second
    assert is_encrypted(first)
    assert "sk-ant-secret" not in first
    assert key.decrypt(first) == key.decrypt(second) == "sk-ant-secret"


def test_legacy_plaintext_reads_as_it_is() -> None:
    assert SecretKey.generate().decrypt("sk-ant-plaintext") == "sk-ant-plaintext"


def test_another_key_cannot_decrypt_and_says_how_to_fix_it() -> None:
    stored = SecretKey.generate().encrypt("token")

    with pytest.raises(CredentialKeyError, match="BETTER_CCFLARE_SECRET_KEY to the original"):
        SecretKey.generate().decrypt(stored)


def test_a_tampered_value_is_refused() -> None:
    key = SecretKey.generate()
    stored = key.encrypt("token")
    tampered = stored[:-4] + ("AAAA" if stored[-4:] != "AAAA" else "BBBB")

    with pytest.raises(CredentialKeyError):
        key.decrypt(tampered)
