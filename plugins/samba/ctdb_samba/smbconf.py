"""The cached ``testparm -v -s`` output 4.17's 50.samba keeps, and what it reads from it.

4.17 refreshes the cache at every monitor event and keeps the old one when testparm
fails or hangs, so a broken smb.conf edit does not make a running node unhealthy at
once; lines for ``registry shares``, ``include``, ``copy`` and ``winbind separator``
are dropped from it, as 4.17 drops them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_DROPPED = re.compile(r"^\s+(registry\s+shares|include|copy|winbind\s+separator)\s+=")
_SECTION = re.compile(r"^\[(.+)\]\s*$")
_PARAM = re.compile(r"^\s*([^=]+?)\s*=\s*(.*?)\s*$")


def filtered(testparm_output: str) -> str:
    return "".join(line for line in testparm_output.splitlines(keepends=True) if not _DROPPED.match(line))


def write_cache(path: Path, testparm_output: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}")
    tmp.write_text(filtered(testparm_output))
    os.replace(tmp, path)  # atomic, as 4.17's mv


def parse(text: str) -> dict[str, dict[str, str]]:
    """Section name → {parameter: value} (parameters lower-cased, as Samba's are)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        m = _SECTION.match(line.strip())
        if m:
            current = sections.setdefault(m.group(1).strip(), {})
            continue
        m = _PARAM.match(line)
        if m and current is not None:
            current[" ".join(m.group(1).lower().split())] = m.group(2)
    return sections


def smb_ports(conf: dict[str, dict[str, str]]) -> list[int]:
    """``smb ports`` of [global] (Samba's default 445 139)."""
    value = conf.get("global", {}).get("smb ports", "445 139")
    return [int(w) for w in value.replace(",", " ").split() if w.isdigit()]


def share_paths(conf: dict[str, dict[str, str]]) -> list[str]:
    """Every ``path =`` (4.17 takes them all, quotes removed)."""
    return [params["path"].replace('"', "") for name, params in conf.items() if params.get("path")]


def pid_directory(conf: dict[str, dict[str, str]]) -> str:
    return conf.get("global", {}).get("pid directory", "/run/samba")
