"""The test instruments that decide a run's verdict: strict mode and the listening-socket reader."""

from __future__ import annotations

import ipaddress

import pytest
from helpers import servers


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"CI": "1"}, True),
        ({"CI": "false"}, False),
        ({"CI": ""}, False),
        ({"MAKELEVEL": "1"}, True),  # make exports it to every recipe: `make test`
    ],
)
def test_strict_in_ci_and_under_make(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("MAKELEVEL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert servers.strict() is expected


@pytest.mark.parametrize(
    ("hex_address", "host", "port", "loopback"),
    [
        ("0100007F:0FA0", "127.0.0.1", 4000, True),
        ("00000000:0FA0", "0.0.0.0", 4000, False),  # noqa: S104 - a decoded literal
        ("00000000000000000000000000000000:2760", "::", 10080, False),
        ("00000000000000000000000001000000:2760", "::1", 10080, True),
        ("0000000000000000FFFF00000100007F:2760", "::ffff:127.0.0.1", 10080, True),
        ("0000000000000000FFFF00000A00000A:2760", "::ffff:10.0.0.10", 10080, False),
    ],
)
def test_proc_net_addresses_are_decoded(
    hex_address: str, host: str, port: int, loopback: bool
) -> None:
    decoded_host, decoded_port = servers._decode_address(hex_address)
    assert (ipaddress.ip_address(decoded_host), decoded_port) == (ipaddress.ip_address(host), port)
    assert servers.is_loopback(host) is loopback


def test_the_url_in_the_report_hides_the_password() -> None:
    shown = servers.describe_url("mysql+pymysql://u:secret@h:4000/db")
    assert "secret" not in shown
    assert shown.startswith("mysql+pymysql://u:")
