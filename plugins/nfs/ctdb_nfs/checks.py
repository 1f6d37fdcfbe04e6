"""``nfs-checks.d``: one ``NN.<rpcprog>.check`` file per RPC service, as 4.17's
60.nfs reads and applies them (``nfs_check_services``/``nfs_check_service``).

A file holds ``key=value`` lines (``#`` comments and blank lines ignored):

* ``family``: ``tcp`` (default), ``udp``, ``tcp6``, ``udp6``, space separated;
* ``version``: RPC versions to probe, space separated (default: any);
* ``unhealthy_after`` (default 1): failures in a row before the node is unhealthy
  (0: never);
* ``restart_every`` (default 0): restart the service every N failures;
* ``service_start_cmd``, ``service_stop_cmd``: how to restart it;
* ``service_check_cmd``: a command that checks it instead of ``rpcinfo``;
* ``service_debug_cmd``: run after the stop (``program_stack_traces PROG N``).

Values are unquoted as the shell would (4.17 ``eval``\\ s each line); variable
references stay for the shell that runs the command. A line with another key, or an
integer key whose value is not an integer, is an error at its file and line.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import attrs

KEYS = ("family", "version", "unhealthy_after", "restart_every", "service_stop_cmd",
        "service_start_cmd", "service_check_cmd", "service_debug_cmd")
INT_KEYS = ("unhealthy_after", "restart_every")
FILE_RE = re.compile(r"^[0-9][0-9]\.(.+)\.check$")


class CheckFileError(Exception):
    """A .check file 4.17 would refuse; ``str()`` is the line for the monitor output."""

    def __init__(self, message: str, path: str | Path, line: int) -> None:
        super().__init__(f"{message} ({path}:{line})")
        self.message, self.path, self.line = message, str(path), line


@attrs.frozen
class Check:
    """One parsed .check file."""

    progname: str
    path: str
    family: tuple[str, ...] = ("tcp",)
    version: tuple[str, ...] = ()
    unhealthy_after: int = 1
    restart_every: int = 0
    service_stop_cmd: str = ""
    service_start_cmd: str = ""
    service_check_cmd: str = ""
    service_debug_cmd: str = ""

    @property
    def counted(self) -> bool:
        """4.17 resets the counter on success only for checks that use it."""
        return self.unhealthy_after != 1 or self.restart_every != 0


def _unquote(text: str, path: Path, lineno: int) -> str:
    try:
        return " ".join(shlex.split(text, comments=False, posix=True))
    except ValueError as exc:
        raise CheckFileError(f"bad quoting: {exc}", path, lineno) from None


def parse_check(path: str | Path, text: str | None = None) -> Check:
    """Parse one .check file; :class:`CheckFileError` for what 4.17 refuses."""
    path = Path(path)
    m = FILE_RE.match(path.name)
    progname = m.group(1) if m else path.name
    if text is None:
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            raise CheckFileError(f"cannot read: {exc.strerror}", path, 0) from None
    values: dict[str, object] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if not eq or key not in KEYS:
            # 4.17: echo "ERROR: Unknown variable for ${_progname}: ${_line}"; exit 1
            raise CheckFileError(f"ERROR: Unknown variable for {progname}: {line}", path, lineno)
        text_value = _unquote(value, path, lineno)
        if key in INT_KEYS:
            if not re.fullmatch(r"-?[0-9]+", text_value):
                raise CheckFileError(f"ERROR: {key} for {progname} is not an integer: {line}", path, lineno)
            values[key] = int(text_value)
        elif key in ("family", "version"):
            values[key] = tuple(text_value.split())
        else:
            values[key] = text_value
    if not values.get("family", ("tcp",)):
        values["family"] = ("tcp",)
    return Check(progname=progname, path=str(path), **values)  # type: ignore[arg-type]


def check_files(directory: str | Path) -> Iterator[Path]:
    """The ``[0-9][0-9].*.check`` files of a directory, in name order (4.17's glob)."""
    d = Path(directory)
    try:
        names = sorted(p.name for p in d.iterdir())
    except OSError:
        return
    for name in names:
        if FILE_RE.match(name) and (d / name).is_file():
            yield d / name


def shipped_dir(backend: str) -> Path:
    """The check set shipped for a built-in backend."""
    return Path(__file__).parent / "checks" / backend
