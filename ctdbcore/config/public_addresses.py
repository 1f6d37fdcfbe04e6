"""``public_addresses``: ``ADDR/BITS IFACE[,IFACE...]`` per line (reference §5.1).

4.17 requires the interface list. The 2009-era format let it default to
``CTDB_PUBLIC_INTERFACE``; callers pass that as ``default_iface`` when they read a
legacy sysconfig, and only then may a line omit it.
"""

from __future__ import annotations

import ipaddress
import re

import attrs

from ctdbcore.config.convert import IPAddress
from ctdbcore.config.errors import ConfigErrors, ErrorCollector

#: Linux IFNAMSIZ - 1; a longer name could never be configured on the host.
MAX_IFACE_LEN = 15
_IFACE_RE = re.compile(r"^[^\s,/:]+$")


@attrs.frozen
class PublicAddress:
    ip: IPAddress
    prefixlen: int
    ifaces: tuple[str, ...]
    line: int | None = attrs.field(default=None, eq=False, repr=False)

    def __str__(self) -> str:
        return f"{self.ip}/{self.prefixlen} {','.join(self.ifaces)}"


def _parse_ifaces(text: str, lineno: int, errors: ErrorCollector) -> tuple[str, ...] | None:
    ifaces = tuple(text.split(","))
    for name in ifaces:
        if not name:
            errors.add(lineno, f"empty interface name in {text!r}")
            return None
        if not _IFACE_RE.match(name) or len(name) > MAX_IFACE_LEN:
            errors.add(lineno, f"invalid interface name {name!r}")
            return None
    if len(set(ifaces)) != len(ifaces):
        errors.add(lineno, f"interface listed twice in {text!r}")
        return None
    return ifaces


def parse_public_addresses_text(
    text: str, path: str | None = "public_addresses", *, default_iface: str | None = None
) -> tuple[PublicAddress, ...]:
    errors = ErrorCollector(path)
    result: list[PublicAddress] = []
    seen: dict[IPAddress, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) > 2:
            errors.add(lineno, f"unexpected text after the interface list: {' '.join(fields[2:])!r}")
            continue
        addr_text, _, bits_text = fields[0].partition("/")
        try:
            ip = ipaddress.ip_address(addr_text)
        except ValueError:
            errors.add(lineno, f"invalid public address {addr_text!r}")
            continue
        if not bits_text:
            errors.add(lineno, f"missing netmask bits in {fields[0]!r} (write ADDR/BITS)")
            continue
        if not (bits_text.isascii() and bits_text.isdigit()) or int(bits_text) > ip.max_prefixlen:
            errors.add(lineno, f"invalid netmask bits {bits_text!r} for {ip} (0-{ip.max_prefixlen})")
            continue
        if len(fields) == 2:
            ifaces = _parse_ifaces(fields[1], lineno, errors)
            if ifaces is None:
                continue
        elif default_iface:
            ifaces = (default_iface,)
        else:
            errors.add(lineno, f"missing interface for {fields[0]} (4.17 requires 'ADDR/BITS IFACE[,IFACE...]')")
            continue
        if ip in seen:
            errors.add(lineno, f"duplicate public address {ip} (already on line {seen[ip]})")
            continue
        seen[ip] = lineno
        result.append(PublicAddress(ip, int(bits_text), ifaces, lineno))
    errors.raise_if_any()
    return tuple(result)


def parse_public_addresses_file(path: str, *, default_iface: str | None = None) -> tuple[PublicAddress, ...]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        errors = ErrorCollector(path)
        errors.add(None, f"cannot read: {exc}")
        raise ConfigErrors(errors.errors) from exc
    return parse_public_addresses_text(text, path, default_iface=default_iface)
