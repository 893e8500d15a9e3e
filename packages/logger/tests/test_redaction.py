from __future__ import annotations

import json
import logging
import string
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from better_ccflare.core import LogFormat, LogLevel
from better_ccflare.logger import REDACTED, RedactionFilter, configure_logging, redact, redact_data

ANTHROPIC_KEY = "sk-ant-api03-" + "A1b2C3d4" * 10
OAUTH_ACCESS = "sk-ant-oat01-" + "Zz9_Yy8-" * 6
PROXY_KEY = "btr-" + "Q7" * 16
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer [REDACTED]"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic [REDACTED]"),
        ("BEARER Bearer abcdefgh12345678", "BEARER Bearer [REDACTED]"),
        (f"using key {ANTHROPIC_KEY} now", "using key sk-ant-api03-[REDACTED] now"),
        (f"token {OAUTH_ACCESS}", "token sk-ant-oat01-[REDACTED]"),
        ("sk-proj-" + "x" * 40, "sk-[REDACTED]"),
        (f"key {PROXY_KEY} rejected", "key btr-[REDACTED] rejected"),
        (f"id_token {JWT}", f"id_token {REDACTED}"),
        ("AIza" + "b" * 35, "AIza[REDACTED]"),
        ("ya29." + "c1" * 20, "ya29.[REDACTED]"),
        ("x-api-key: some-opaque-value", "x-api-key: [REDACTED]"),
        ("X-Api-Key=abc123", "X-Api-Key=[REDACTED]"),
        (
            '{"access_token": "abc def", "expires_in": 3600}',
            '{"access_token": "[REDACTED]", "expires_in": 3600}',
        ),
        ("{'refresh_token': 'r1'}", "{'refresh_token': '[REDACTED]'}"),
        (
            "grant_type=refresh_token&refresh_token=r1&client_id=c",
            "grant_type=refresh_token&refresh_token=[REDACTED]&client_id=c",
        ),
        ('{\\"client_secret\\": \\"s3\\"}', '{\\"client_secret\\": \\"[REDACTED]\\"}'),
        ('"authorization": "Bearer abc"', '"authorization": "Bearer [REDACTED]"'),
        (
            "GET /api/logs/stream?stream_token=abc123&x=1",
            "GET /api/logs/stream?stream_token=[REDACTED]&x=1",
        ),
        ("code_verifier=v3r1f13r", "code_verifier=[REDACTED]"),
        ("password = hunter2", "password = [REDACTED]"),
        ("Cookie: sessionKey=abc; theme=dark", "Cookie: [REDACTED]"),
        ("Set-Cookie: a=b; HttpOnly\nnext line", "Set-Cookie: [REDACTED]\nnext line"),
        (
            "-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----[REDACTED]-----END PRIVATE KEY-----",
        ),
    ],
)
def test_redact_replaces_each_kind_of_secret_and_keeps_context(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "forwarded to better_ccflare.load_balancer.strategies in 12 ms",
        '{"max_tokens": 1000, "input_tokens": 5, "output_tokens": 7}',
        "status code: 429, retry after 30s",
        "account 9d1c250a-e61b-44d9-88ed-5944d1962f5e is rate limited",
        "task-0123456789abcdefghijklmnop finished",
        "POST https://api.anthropic.com/v1/messages?beta=true",
        '{"refresh_token": null, "has_token": true}',
        "sk-ant-short",
        "",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BEARER access_token: s3cr3tvalue", "BEARER [REDACTED]: [REDACTED]"),
        ("token= access_token = s3cr3tvalue", "token= [REDACTED] = [REDACTED]"),
        ('TOKEN= "access_token": "s3cr3tvalue"', 'TOKEN= "[REDACTED]": "[REDACTED]"'),
        ("token=Bearer Bearer s3cr3tvalue", "token=Bearer Bearer [REDACTED]"),
        ("TOKEN=TOKEN=Bearer s3cr3tvalue", "TOKEN=[REDACTED]"),
        ('token="a token: "s3cr3tvalue"', 'token="[REDACTED]"'),
    ],
)
def test_a_credential_key_inside_another_value_still_has_its_value_redacted(
    text: str, expected: str
) -> None:
    assert redact(text) == expected


def test_quoted_password_with_spaces_is_redacted_whole() -> None:
    assert redact('{"password": "correct horse battery"}') == '{"password": "[REDACTED]"}'


def test_redact_data_replaces_values_under_credential_keys_at_any_depth() -> None:
    data = {
        "Authorization": "Bearer abc",
        "headers": [{"X-API-KEY": "k1", "content-type": "application/json"}],
        "oauth": {"accessToken": "a", "refresh_token": "r", "expires_at_ms": 5},
        "client_secret": 12345,
        "Cookie": "a=b",
    }
    assert redact_data(data) == {
        "Authorization": REDACTED,
        "headers": [{"X-API-KEY": REDACTED, "content-type": "application/json"}],
        "oauth": {"accessToken": REDACTED, "refresh_token": REDACTED, "expires_at_ms": 5},
        "client_secret": REDACTED,
        "Cookie": REDACTED,
    }


def test_redact_data_keeps_absent_credentials_visible() -> None:
    data = {"refresh_token": None, "api_key": "", "has_token": True}
    assert redact_data(data) == data


def test_redact_data_redacts_secrets_inside_ordinary_strings() -> None:
    assert redact_data({"note": f"used {PROXY_KEY}"}) == {"note": "used btr-[REDACTED]"}


def test_redact_data_does_not_modify_the_callers_data() -> None:
    data = {"token": "t", "nested": {"password": "p"}}
    redact_data(data)
    assert data == {"token": "t", "nested": {"password": "p"}}


def test_redact_data_makes_odd_values_json_compatible() -> None:
    class Opaque:
        def __str__(self) -> str:
            return f"Opaque(key={PROXY_KEY})"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    result = redact_data(
        {"obj": Opaque(), "broken": Broken(), "raw": b"Bearer abc", 3: {1, 2}, "cyclic": cyclic}
    )
    json.dumps(result)
    assert result["obj"] == "Opaque(key=btr-[REDACTED])"
    assert result["broken"] == "<unprintable Broken>"
    assert result["raw"] == "Bearer [REDACTED]"
    assert result["3"] == [1, 2]


# --- through the real logging machinery ------------------------------------------------------


def _file_record(log_dir: Path) -> dict[str, object]:
    lines = (log_dir / "app.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_secrets_in_message_arguments_are_redacted_in_file_and_console(
    tmp_path: Path, log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.PRETTY, log_dir=tmp_path)
    log.info("refreshing with %s", ANTHROPIC_KEY)
    assert _file_record(tmp_path)["msg"] == "refreshing with sk-ant-api03-[REDACTED]"
    err = capsys.readouterr().err
    assert "refreshing with sk-ant-api03-[REDACTED]" in err
    assert ANTHROPIC_KEY not in err


def test_structured_data_is_redacted_and_the_callers_dict_is_untouched(
    tmp_path: Path, log: logging.Logger
) -> None:
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=tmp_path, console=False)
    headers = {"authorization": "Bearer abc", "anthropic-version": "2023-06-01"}
    log.info("upstream request", extra={"data": {"headers": headers}})
    assert _file_record(tmp_path)["data"] == {
        "headers": {"authorization": REDACTED, "anthropic-version": "2023-06-01"}
    }
    assert headers["authorization"] == "Bearer abc"


def test_exception_text_is_redacted(tmp_path: Path, log: logging.Logger) -> None:
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=tmp_path, console=False)
    try:
        raise ValueError(f"upstream rejected {PROXY_KEY}")
    except ValueError:
        log.exception("request failed")
    exc = _file_record(tmp_path)["exc"]
    assert isinstance(exc, str)
    assert "ValueError: upstream rejected btr-[REDACTED]" in exc
    assert PROXY_KEY not in exc


def test_filter_never_raises_on_a_bad_format_string(log: logging.Logger) -> None:
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "%d tokens for %s", ("x",), None)
    assert RedactionFilter().filter(record)
    assert record.getMessage().startswith("%d tokens for %s (arguments did not match")


def test_filter_redacts_stack_info(log: logging.Logger) -> None:
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "m", (), None)
    record.stack_info = f"Stack (most recent call last):\n  key={PROXY_KEY}"
    RedactionFilter().filter(record)
    assert record.stack_info == "Stack (most recent call last):\n  key=btr-[REDACTED]"


def test_filter_works_on_records_logged_without_exc_text(log: logging.Logger) -> None:
    try:
        raise KeyError(ANTHROPIC_KEY)
    except KeyError:
        record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    RedactionFilter().filter(record)
    assert record.exc_text is not None
    assert ANTHROPIC_KEY not in record.exc_text


# --- properties ------------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"


def _text(alphabet: str, min_size: int, max_size: int = 80) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=min_size, max_size=max_size)


# Each strategy yields (secret as it appears in the text, the part that must not survive).


@st.composite
def anthropic_keys(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(["api03-", "oat01-", "ort01-", "sid01-", ""]))
    body = draw(_text(B64URL, 16))
    return f"sk-ant-{kind}{body}", body


@st.composite
def generic_sk_keys(draw: st.DrawFn) -> tuple[str, str]:
    body = draw(_text(B64URL, 20).filter(lambda body: not body.startswith("ant-")))
    return f"sk-{body}", body


@st.composite
def proxy_keys(draw: st.DrawFn) -> tuple[str, str]:
    body = draw(_text(ALNUM, 32, 32))
    return f"btr-{body}", body


@st.composite
def bearer_tokens(draw: st.DrawFn) -> tuple[str, str]:
    scheme = draw(st.sampled_from(["Bearer", "bearer", "BEARER"]))
    token = draw(_text(ALNUM + "-._~+/", 16))
    padding = draw(st.sampled_from(["", "=", "=="]))
    return f"{scheme} {token}{padding}", token


@st.composite
def jwts(draw: st.DrawFn) -> tuple[str, str]:
    header, payload, signature = (draw(_text(B64URL, 8)) for _ in range(3))
    return f"eyJ{header}.{payload}.{signature}", f"{header}.{payload}.{signature}"


@st.composite
def google_credentials(draw: st.DrawFn) -> tuple[str, str]:
    if draw(st.booleans()):
        body = draw(_text(B64URL, 35, 35))
        return f"AIza{body}", body
    body = draw(_text(B64URL + ".", 20))
    return f"ya29.{body}", body


_CREDENTIAL_KEYS = [
    "access_token",
    "refresh_token",
    "Authorization",
    "x-api-key",
    "api_key",
    "apiKey",
    "client_secret",
    "password",
    "code_verifier",
    "token",
    "stream_token",
]
_QUOTED_VALUE = "".join(c for c in string.printable if c not in "\"'\\" and not c.isspace())


@st.composite
def credential_pairs(draw: st.DrawFn) -> tuple[str, str]:
    key = draw(st.sampled_from(_CREDENTIAL_KEYS))
    if draw(st.booleans()):
        value = draw(_text(_QUOTED_VALUE, 16))
        form = draw(st.sampled_from(['"{k}": "{v}"', "'{k}': '{v}'", '"{k}":"{v}"']))
    else:
        value = draw(_text(B64URL + "./+", 16))
        form = draw(st.sampled_from(["{k}={v}", "{k}: {v}", "{k} = {v}", "?{k}={v}&x=1"]))
    return form.format(k=key, v=value), value


secrets = st.one_of(
    anthropic_keys(),
    generic_sk_keys(),
    proxy_keys(),
    bearer_tokens(),
    jwts(),
    google_credentials(),
    credential_pairs(),
)


_TRICKY = st.sampled_from(
    [
        "Bearer ",
        "token=",
        "TOKEN=",
        "access_token: ",
        "x-api-key: ",
        '"password": "',
        "'",
        '"',
        "\\",
        '\\"',
        "sk-ant-",
        "sk-",
        "btr-",
        "eyJ",
        "AIza",
        "ya29.",
        ".",
        "]",
        "=",
        ":",
        "&",
        "\n",
        "null",
        REDACTED,
        "cookie:",
        "-----BEGIN PRIVATE KEY-----",
        "-----END PRIVATE KEY-----",
    ]
)


# Surrounding text: arbitrary, with fragments that other rules react to mixed in.
surroundings = st.lists(st.one_of(st.text(max_size=10), _TRICKY), max_size=6).map("".join)


@given(prefix=surroundings, secret=secrets, suffix=surroundings)
def test_no_generated_secret_survives_redaction(
    prefix: str, secret: tuple[str, str], suffix: str
) -> None:
    text, must_vanish = secret
    assume(must_vanish not in prefix and must_vanish not in suffix)
    assert must_vanish not in redact(f"{prefix} {text} {suffix}")


@given(
    st.lists(
        st.one_of(st.text(max_size=10), _TRICKY, secrets.map(lambda s: s[0])), max_size=12
    ).map("".join)
)
def test_redaction_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


# Text that cannot contain a secret: no "-" (keys, PEM), "." (JWTs, ya29), ":" or "=" (pairs),
# "b" (Bearer) or "z" (AIza).
_CLEAN = st.characters(exclude_characters="-.:=bBzZ", exclude_categories=("Cs",))


@given(st.text(alphabet=_CLEAN))
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert redact(text) == text
