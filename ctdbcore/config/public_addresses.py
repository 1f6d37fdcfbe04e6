"""`public_addresses`: `addr/mask iface[,iface]` per line (4.17), IPv4 and IPv6.
A line without an interface takes the seed's CTDB_PUBLIC_INTERFACE when given."""

from __future__ import annotations

import ipaddress
import re

import attrs

from ctdbcore.config.errors import Collector, ConfigError, ConfigErrors

_IFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")


@attrs.frozen
class PublicAddress:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    prefixlen: int
    ifaces: tuple[str, ...]


def parse_public_addresses_text(text: str, path: str | None = None, *, default_iface: str | None = None) -> tuple[PublicAddress, ...]:
    errs = Collector(path)
    out: list[PublicAddress] = []
    seen: dict[object, int] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) > 2:
            errs.add(no, f"expected 'address/mask interface[,interface]', got {line!r}")
            continue
        try:
            iface = ipaddress.ip_interface(parts[0])
        except ValueError:
            errs.add(no, f"{parts[0]!r} is not an address/mask")
            continue
        if "/" not in parts[0]:
            errs.add(no, f"{parts[0]!r} has no /mask")
            continue
        if len(parts) == 2:
            ifaces = tuple(parts[1].split(","))
        elif default_iface:
            ifaces = (default_iface,)
        else:
            errs.add(no, f"{parts[0]}: no interface given (and no CTDB_PUBLIC_INTERFACE)")
            continue
        bad = [i for i in ifaces if not _IFACE.match(i)]
        if bad:
            errs.add(no, f"bad interface name {bad[0]!r}")
            continue
        if iface.ip in seen:
            errs.add(no, f"{iface.ip} is listed twice (also line {seen[iface.ip]})")
            continue
        seen[iface.ip] = no
        out.append(PublicAddress(iface.ip, iface.network.prefixlen, ifaces))
    errs.raise_if_any()
    return tuple(out)


def parse_public_addresses_file(path: str, *, default_iface: str | None = None) -> tuple[PublicAddress, ...]:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigErrors([ConfigError(path, None, f"cannot read: {e.strerror}")]) from None
    return parse_public_addresses_text(text, path, default_iface=default_iface)
