"""Error bodies as registries and object storage send them: what each says, and only that."""

from __future__ import annotations

import pytest

from regprobe.errorbody import ErrorBody, parse


@pytest.mark.parametrize(
    ("body", "said"),
    [
        # distribution 2.8.2 on manifest data that is not JSON (VERIFIED): detail is the decoder's error object.
        (
            b'{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":{"Offset":32}}]}',
            ErrorBody("UNKNOWN", "unknown error", '{"Offset":32}'),
        ),
        # distribution v3, same fault (VERIFIED): detail is a string.
        (
            b'{"errors":[{"code":"UNKNOWN","message":"unknown error",'
            b'"detail":"invalid character \'g\' looking for beginning of value"}]}',
            ErrorBody("UNKNOWN", "unknown error", "invalid character 'g' looking for beginning of value"),
        ),
        (
            b'{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}',
            ErrorBody("MANIFEST_UNKNOWN", "manifest unknown", None),
        ),  # zot
        (
            b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>We encountered an internal error."
            b"</Message></Error>",
            ErrorBody("InternalError", "We encountered an internal error.", None),
        ),
        (b'{"errors": [{"code": "BAD\\nLINE", "detail": {}}]}', None),
        (b"<html><body>502 Bad Gateway</body></html>", None),
        (b"", None),
        (b'{"errors": [[]]}', None),
        (b"[" * 100_000, None),
    ],
)
def test_what_an_error_body_says(body: bytes, said: ErrorBody | None) -> None:
    assert parse(body) == said


def test_shown_as_one_line() -> None:
    assert (
        str(ErrorBody("UNKNOWN", "unknown error", '{"Offset":32}')) == 'UNKNOWN: unknown error (detail: {"Offset":32})'
    )
    assert str(ErrorBody(None, None, "x")) == "detail: x"
