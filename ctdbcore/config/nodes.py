"""The nodes file, exactly as 4.17 ``ctdb_read_nodes_file`` reads it.

PNN = position among the non-blank lines. A ``#`` line is *not* a comment: it
is a DELETED node that keeps its PNN, which is how 4.17 removes a node without
renumbering the others (reference §7.3). 4.17 takes no port in this file; an
``addr:port`` (master's syntax) is refused rather than misread.
"""

from __future__ import annotations

import ipaddress
import re

import attrs

from ctdbcore.config.convert import IPAddress
from ctdbcore.config.errors import ConfigError, ConfigErrors, ErrorCollector

_V4_PORT = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):(\d+)$")
_V6_PORT = re.compile(r"^\[([0-9A-Fa-f:.%\w]+)\]:(\d+)$")


@attrs.frozen
class NodeEntry:
    pnn: int
    #: None for a deleted node (4.17 shows 0.0.0.0)
    address: IPAddress | None
    deleted: bool = False
    #: line in the nodes file, for messages
    line: int | None = attrs.field(default=None, eq=False, repr=False)


def _port_message(text: str) -> str | None:
    for pattern in (_V4_PORT, _V6_PORT):
        m = pattern.match(text)
        if m:
            return (
                f"explicit port in {text!r} is not supported: 4.17 nodes files take a bare "
                f"address and the port is always 4379 (or ctdb/tcp in /etc/services); "
                f"write {m.group(1)!r}"
            )
    return None


def parse_nodes_text(text: str, path: str | None = "nodes") -> tuple[NodeEntry, ...]:
    errors = ErrorCollector(path)
    entries: list[NodeEntry] = []
    seen: dict[IPAddress, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip(" \t\r")
        if not line:
            continue  # blank lines take no PNN (trailing ones included)
        pnn = len(entries)
        if line.startswith("#"):
            entries.append(NodeEntry(pnn, None, True, lineno))
            continue
        try:
            addr = ipaddress.ip_address(line)
        except ValueError:
            errors.add(lineno, _port_message(line) or f"invalid node address {line!r}")
            entries.append(NodeEntry(pnn, None, False, lineno))
            continue
        if addr in seen:
            errors.add(lineno, f"duplicate node address {addr} (already on line {seen[addr]})")
        else:
            seen[addr] = lineno
        entries.append(NodeEntry(pnn, addr, False, lineno))
    if not errors.errors and not any(not e.deleted for e in entries):
        errors.add(None, "no nodes defined")
    errors.raise_if_any()
    return tuple(entries)


def parse_nodes_file(path: str) -> tuple[NodeEntry, ...]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([_read_error(path, exc)]) from exc
    return parse_nodes_text(text, path)


def _read_error(path: str, exc: Exception) -> ConfigError:
    errors = ErrorCollector(path)
    if isinstance(exc, FileNotFoundError):
        errors.add(None, "nodes file not found (every node needs the same list of node addresses)")
    else:
        errors.add(None, f"cannot read: {exc}")
    return errors.errors[0]
