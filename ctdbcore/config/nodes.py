"""The nodes file, 4.17 rules: PNN = position among non-blank lines; a line whose
first non-blank character is `#` is a DELETED node that keeps its PNN."""

from __future__ import annotations

import ipaddress

import attrs

from ctdbcore.config.errors import Collector, ConfigError, ConfigErrors

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@attrs.frozen
class NodeEntry:
    pnn: int
    address: IPAddress | None
    deleted: bool = False


def parse_nodes_text(text: str, path: str | None = None) -> tuple[NodeEntry, ...]:
    errs = Collector(path)
    out: list[NodeEntry] = []
    seen: dict[IPAddress, int] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip(" \t")
        if not line:
            continue
        pnn = len(out)
        if line.startswith("#"):
            out.append(NodeEntry(pnn, None, True))
            continue
        try:
            addr = ipaddress.ip_address(line)
        except ValueError:
            if ":" in line and line.count(":") == 1 or line.startswith("["):
                errs.add(no, f"{line!r}: a port in the nodes file is not supported (CTDB 4.17 uses 4379)")
            else:
                errs.add(no, f"{line!r} is not an IPv4 or IPv6 address")
            out.append(NodeEntry(pnn, None, True))
            continue
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        if addr in seen:
            errs.add(no, f"{addr} is listed twice (also line {seen[addr]})")
        seen[addr] = no
        out.append(NodeEntry(pnn, addr, False))
    if not any(not n.deleted for n in out) and not errs.errors:
        errs.add(None, "no nodes")
    errs.raise_if_any()
    return tuple(out)


def parse_nodes_file(path: str) -> tuple[NodeEntry, ...]:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigErrors([ConfigError(path, None, f"cannot read nodes file: {e.strerror}")]) from None
    return parse_nodes_text(text, path)
