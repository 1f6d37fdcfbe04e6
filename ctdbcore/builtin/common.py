"""Small helpers the built-in plugins share: 4.17's ``set_proc``, ``$CTDB`` and
the shape of a failing script (its output lines, then exit 1)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Where ``set_proc``/``get_proc`` read and write; tests point it at a directory.
PROC_DIR = "/proc"


def proc_path(name: str) -> Path:
    return Path(PROC_DIR) / name


def set_proc(name: str, value: str) -> str | None:
    """4.17 ``set_proc``: ``echo VALUE >/proc/NAME``; the error text, or None."""
    try:
        with open(proc_path(name), "w", encoding="ascii") as fh:
            fh.write(f"{value}\n")
    except OSError as exc:
        return f"cannot write {value!r} to {proc_path(name)}: {exc.strerror or exc}"
    return None


def set_proc_maybe(name: str, value: str) -> None:
    """4.17 ``set_proc_maybe``: only if the file is writable; errors ignored."""
    path = proc_path(name)
    if os.access(path, os.W_OK):
        set_proc(name, value)


def get_proc(name: str) -> str | None:
    """4.17 ``get_proc``: the text of ``/proc/NAME``, or None."""
    try:
        return proc_path(name).read_text(errors="replace")
    except OSError:
        return None


def flush_route_cache() -> None:
    """4.17 ``flush_route_cache``."""
    set_proc_maybe("sys/net/ipv4/route/flush", "1")
    set_proc_maybe("sys/net/ipv6/route/flush", "1")


def ctdb_tool(*args: str) -> tuple[str, ...]:
    """argv of this installation's ``ctdb`` tool (4.17's ``$CTDB``): the same Python,
    so a plugin never runs another ``ctdb`` that happens to be first in PATH. It
    finds the daemon through ``$CTDB_SOCKET``, which ctdbd sets for its children."""
    return (sys.executable, "-m", "ctdbcore.tools.ctdb", *args)


class Die(Exception):
    """4.17 ``die``: stop the event with this output and exit status 1."""


class Output:
    """The lines a script prints; the plugin's output if it fails."""

    def __init__(self, logger) -> None:
        self.lines: list[str] = []
        self.logger = logger

    def say(self, text: str, level: str = "warning") -> None:
        self.lines.append(text)
        getattr(self.logger, level)("%s", text)

    def text(self, *more: str) -> str:
        return "\n".join([*self.lines, *more])
