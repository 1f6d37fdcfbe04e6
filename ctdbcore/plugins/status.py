"""Event status: the last run per event, and 4.17's ``ctdb event status`` output.

4.17's eventd keeps the result of the last run of each event and prints it with
``print_status_one`` (ctdb/event/event_tool.c); ``ctdb scriptstatus`` is
``ctdb event status legacy monitor``. ctdbd keeps the same in
``$rundir/eventstatus.json`` so that ``ctdb event status`` can answer it locally.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from ctdbcore.plugins.runner import STATUS_DISABLED, STATUS_TIMEDOUT, EventRun, ScriptResult, converter

log = logging.getLogger("ctdb.plugins")

#: The only component ctdbd runs (4.17 ``ctdb event … legacy …``).
COMPONENT = "legacy"
STATUS_FILE_NAME = "eventstatus.json"
_FORMAT_VERSION = 1


def _ctime(seconds: float) -> str:
    # C ctime(&tv_sec): local time, "Www Mmm dd hh:mm:ss yyyy\n"
    return time.ctime(int(seconds)) + "\n"


def format_script_result(result: ScriptResult) -> str:
    """One script's lines, byte-identical to 4.17 ``print_status_one``."""
    name = f"{result.name:<20}"
    status = result.status
    if status == STATUS_TIMEDOUT:
        text = f"{name} {'TIMEDOUT':<10} {_ctime(result.start)}"
    elif status == STATUS_DISABLED:
        return f"{name} {'DISABLED':<10}\n"
    elif status < 0:
        text = f"{name} {'CANNOT RUN':<10} ({os.strerror(-status)})\n"
    elif status == 0:
        return f"{name} {'OK':<10} {result.end - result.start:.3f} {_ctime(result.start)}"
    else:
        text = f"{name} {'ERROR':<10} {result.end - result.start:.3f} {_ctime(result.start)}"
    return text + f"  OUTPUT: {result.output}\n"


def format_event_status(run: EventRun) -> str:
    """The output of ``ctdb event status legacy <event>`` for a run."""
    return "".join(format_script_result(r) for r in run.results)


def event_status_command(
    run: EventRun | None, event: str, component: str = COMPONENT
) -> tuple[str, int]:
    """Output and exit code of ``ctdb event status <component> <event>``.

    As 4.17 ``event_command_status``: an unknown component prints "Event dir for …
    does not exist" (ENOENT); an event that never ran prints "Event … has never run in
    …" (EINVAL); otherwise the per-script lines and the exit code is ``|summary|``
    (0, the failing exit status, or ETIMEDOUT = 110).
    """
    if component != COMPONENT:
        return f"Event dir for {component} does not exist\n", errno.ENOENT
    if run is None:
        return f"Event {event} has never run in {component}\n", errno.EINVAL
    return format_event_status(run), abs(run.status)


class EventStatusStore:
    """The last :class:`EventRun` per event, persisted as JSON.

    The file is rewritten atomically (temporary file + ``os.replace``) on every
    :meth:`record`. A missing or unreadable file starts an empty store. The methods do
    blocking file I/O (small files); call :meth:`record` from a worker thread if that
    matters.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._runs: dict[str, EventRun] = {}
        self._load()

    @classmethod
    def in_rundir(cls, rundir: str | os.PathLike[str]) -> EventStatusStore:
        return cls(Path(rundir) / STATUS_FILE_NAME)

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable event status file %s: %s", self.path, exc)
            return
        try:
            events = data["events"]
            self._runs = {name: converter.structure(run, EventRun) for name, run in events.items()}
        except Exception as exc:  # noqa: BLE001 - a stale format must not stop ctdbd
            log.warning("ignoring event status file %s in an unknown format: %s", self.path, exc)
            self._runs = {}

    def get(self, event: str) -> EventRun | None:
        """The last run of ``event``, or None if it has never run."""
        return self._runs.get(event)

    def events(self) -> list[str]:
        return sorted(self._runs)

    def record(self, run: EventRun) -> None:
        """Keep ``run`` as the last run of its event and write the file."""
        self._runs[run.event] = run
        self._write()

    def _write(self) -> None:
        data = {
            "version": _FORMAT_VERSION,
            "events": {name: converter.unstructure(run) for name, run in sorted(self._runs.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=1)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def status(self, event: str, component: str = COMPONENT) -> tuple[str, int]:
        """``ctdb event status <component> <event>``: (output, exit code)."""
        return event_status_command(self.get(event), event, component)

    def scriptstatus(self) -> tuple[str, int]:
        """``ctdb scriptstatus`` = ``ctdb event status legacy monitor``."""
        return self.status("monitor")
