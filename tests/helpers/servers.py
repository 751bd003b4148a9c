"""Which TiDB the suite runs on, what that server has, and where a started server listens.

A skipped test reads as green. Tests that need a component the repository builds (the
mock-TiFlash tidb-server, the TLS server) therefore fail when it is missing in CI and under
``make test`` (:func:`strict`); only a developer pointing ``TIDB_URL`` at a TiDB without
TiFlash outside those runs gets a skip.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

__all__ = [
    "TiFlashProbeError",
    "describe_url",
    "has_tiflash",
    "is_loopback",
    "listening_addresses",
    "strict",
    "tiflash_store_count",
]

_TIFLASH_COUNT = "SELECT COUNT(*) FROM INFORMATION_SCHEMA.CLUSTER_INFO WHERE TYPE = 'tiflash'"
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp
_CLOUD_HOST = re.compile(r"\.tidbcloud\.com$", re.IGNORECASE)


class TiFlashProbeError(RuntimeError):
    """The server could not say whether it has TiFlash (an error, not "no TiFlash")."""


def strict() -> bool:
    """True in CI (``CI`` set and not false) and under make (``make test`` sets ``MAKELEVEL``).

    Then a test whose component is missing fails instead of skipping.
    """
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return ci or "MAKELEVEL" in os.environ


def describe_url(url: str) -> str:
    """``url`` with its password hidden, for the run's report."""
    return make_url(url).render_as_string(hide_password=True)


def tiflash_store_count(url: str) -> int:
    """TiFlash stores of the server at ``url`` (0: none).

    Raises:
        TiFlashProbeError: the question itself failed (connection refused, a permission or SQL
            error): that says nothing about TiFlash, so it is never read as 0.
    """
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(_TIFLASH_COUNT)).scalar_one())
    except sa.exc.SQLAlchemyError as exc:
        msg = f"could not ask {describe_url(url)} for its TiFlash stores: {exc}"
        raise TiFlashProbeError(msg) from exc
    finally:
        engine.dispose()


def has_tiflash(url: str) -> bool:
    """Whether the server has TiFlash: TiDB Cloud always does (as the store assumes), else
    :func:`tiflash_store_count` decides (and raises when it cannot)."""
    if _CLOUD_HOST.search(make_url(url).host or ""):
        return True
    return tiflash_store_count(url) > 0


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP address) is a loopback address (``::ffff:127.x`` included)."""
    address = ipaddress.ip_address(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _decode_address(hex_address: str) -> tuple[str, int]:
    host_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(host_hex)
    # The kernel prints the address as 32-bit words in host (little-endian) byte order.
    ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(ordered)), int(port_hex, 16)


def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """The TCP ``(host, port)`` pairs process ``pid`` listens on, read from ``/proc`` (Linux).

    Every listening socket of the process counts, whichever thread opened it.
    """
    inodes = _socket_inodes(pid)
    found = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and inode in inodes:
                found.append(_decode_address(local))
    return sorted(found)
