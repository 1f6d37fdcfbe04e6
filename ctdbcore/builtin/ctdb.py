"""Built-in event plugin ``ctdb``: 4.17's ``00.ctdb.script``.

Entry point (group ``ctdb.services``): ``ctdb = "ctdbcore.builtin.ctdb"``.

* ``init`` (runs first: order 0):

  - empties the script state directory ``ctx.script_vardir`` (4.17's
    ``$CTDB_SCRIPT_VARDIR``, ``<vardir>/scripts``, the parent of every plugin's
    ``ctx.state_dir``): as in 4.17, failure counters, caches and saved state of every
    plugin start afresh with each daemon run (never when that directory is or holds
    the run directory, as when a test host gives none);
  - checks every database file ``*.tdb.*[0-9]`` of the persistent directory with
    ``tdbtool DB check`` (each bounded by 10 s; ``tdbdump DB`` when tdbtool has no
    ``check``). A corrupt persistent database stops ctdbd: "Persistent database DB is
    corrupted! CTDB will not start." (ctdbd attaches the persistent databases on disk
    only after init, so it never opens a corrupt one first);
  - checks the volatile directory the same way; a corrupt volatile database is moved
    aside to ``DB.<YYYYmmdd.HHMMSS>.corrupt``, keeping the newest
    ``CTDB_MAX_CORRUPT_DB_BACKUPS`` (10) such copies of it.

* ``startup``: ``ctdb attach ctdb.tdb persistent`` (this installation's ``ctdb``
  tool; as in 4.17 its failure does not fail the event).
"""

from __future__ import annotations

import glob
import os
import shutil
import time
from pathlib import Path

import attrs

from ctdbcore.builtin.common import Die, Output, ctdb_tool
from ctdbcore.plugins import EventContext, hookimpl, setting

CTDB_ORDER = 0
CTDB_SCRIPT = "00.ctdb"
#: Debian links 00.ctdb into events/legacy on install.
CTDB_ENABLED_BY_DEFAULT = True

#: 4.17: ``timeout 10 tdbtool DB check``.
CHECK_TIMEOUT = 10.0
#: The shell glob of 4.17's checks.
DB_GLOB = "*.tdb.*[0-9]"


@attrs.frozen
class Settings:
    """``[ctdb]`` in ctdb.conf, or 4.17's variables in script.options /
    ``events/legacy/00.ctdb.options``."""

    max_corrupt_db_backups: int = setting(
        10, var="CTDB_MAX_CORRUPT_DB_BACKUPS", help="corrupt copies of a volatile database kept")


CTDB_SETTINGS = Settings


def _database_dirs(ctx: EventContext) -> tuple[str, str]:
    db = getattr(getattr(ctx.config, "ctdb_conf", None), "database", None)
    if db is not None:
        return db.volatile_dir, db.persistent_dir
    var = str(ctx.script_vardir.parent)  # no configuration: the default layout
    return os.path.join(var, "volatile"), os.path.join(var, "persistent")


def reset_script_state(top: Path) -> str | None:
    """4.17 ``rm -rf $CTDB_SCRIPT_VARDIR; mkdir -p $CTDB_SCRIPT_VARDIR``. The directory
    itself stays (it may be a mount point or a symlink); its contents go."""
    try:
        top.mkdir(parents=True, exist_ok=True)
        for entry in list(top.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    except OSError as exc:
        return f"mkdir -p {top} - failed - {exc.strerror or exc}"
    return None


class Checker:
    """4.17 ``select_tdb_checker`` and ``check_tdb``."""

    def __init__(self, ctx: EventContext, out: Output) -> None:
        self.ctx, self.out = ctx, out
        self.mode: str | None = None
        has_tool = shutil.which("tdbtool") is not None
        has_dump = shutil.which("tdbdump") is not None
        if has_tool and "check" in ctx.runner.run(("tdbtool",), input="help\n", timeout=CHECK_TIMEOUT).stdout:
            self.mode = "tdbtool"
        elif has_tool and has_dump:
            self.mode = "tdbdump"
            out.say("WARNING: The installed 'tdbtool' does not offer the 'check' subcommand.\n"
                    " Using 'tdbdump' for database checks.\n"
                    " Consider updating 'tdbtool' for better checks!")
        elif has_dump:
            self.mode = "tdbdump"
            out.say("WARNING: 'tdbtool' is not available.\n"
                    " Using 'tdbdump' to check the databases.\n"
                    " Consider installing a recent 'tdbtool' for better checks! (apt-get install tdb-tools)")
        else:
            out.say("WARNING: Cannot check databases since neither\n"
                    " 'tdbdump' nor 'tdbtool check' is available.\n"
                    " Consider installing tdbtool or at least tdbdump! (apt-get install tdb-tools)")

    def ok(self, path: str) -> bool:
        if self.mode == "tdbtool":
            # tdbtool always exits 0: its verdict is in the output
            done = self.ctx.runner.run(("tdbtool", path, "check"), timeout=CHECK_TIMEOUT)
            return "Database integrity is OK" in done.stdout
        done = self.ctx.runner.run(("tdbdump", path), timeout=CHECK_TIMEOUT)
        return done.returncode == 0


def _databases(directory: str) -> list[str]:
    if not os.path.isdir(directory):
        return []
    return [p for p in sorted(glob.glob(os.path.join(glob.escape(directory), DB_GLOB))) if os.access(p, os.R_OK)]


def check_persistent(checker: Checker, directory: str) -> None:
    for path in _databases(directory):
        if not checker.ok(path):
            raise Die(f"Persistent database {path} is corrupted! CTDB will not start.")


def check_volatile(checker: Checker, directory: str, keep: int, now: float | None = None) -> None:
    for path in _databases(directory):
        if checker.ok(path):
            continue
        backup = f"{path}.{time.strftime('%Y%m%d.%H%M%S', time.localtime(now))}.corrupt"
        checker.out.say(f"WARNING: database {path} is corrupted.\n Moving to backup {backup} for later analysis.")
        try:
            os.rename(path, backup)
        except OSError as exc:
            checker.out.say(f"mv: cannot move '{path}' to '{backup}': {exc.strerror or exc}")
        prune_backups(directory, os.path.basename(path), keep)


def prune_backups(directory: str, base: str, keep: int) -> list[str]:
    """Remove all but the ``keep`` newest ``BASE.*.corrupt`` (4.17: ``find | sort -r |
    tail -n +KEEP+1 | xargs rm -f``); the paths removed."""
    pattern = os.path.join(glob.escape(directory), glob.escape(base) + ".*.corrupt")
    old = sorted(glob.glob(pattern), reverse=True)[max(keep, 0):]
    for path in old:
        try:
            os.unlink(path)
        except OSError:
            pass
    return old


@hookimpl
def ctdb_init(ctx: EventContext) -> str | None:
    out = Output(ctx.logger)
    run = Path(os.path.realpath(ctx.rundir))
    state = Path(os.path.realpath(ctx.script_vardir))
    if state == run or state in run.parents:
        ctx.logger.warning("not emptying %s: it holds the run directory %s", state, run)
    else:
        error = reset_script_state(ctx.script_vardir)
        if error:
            return error
    volatile, persistent = _database_dirs(ctx)
    checker = Checker(ctx, out)
    if checker.mode is None:
        return None
    try:
        check_persistent(checker, persistent)
    except Die as exc:
        ctx.logger.error("%s", exc)
        return out.text(str(exc))
    check_volatile(checker, volatile, ctx.settings.max_corrupt_db_backups)
    return None


@hookimpl
def ctdb_startup(ctx: EventContext) -> None:
    done = ctx.runner.run(ctdb_tool("attach", "ctdb.tdb", "persistent"), timeout=30)
    if not done.ok:
        # 4.17 ignores the result: the script exits 0 whatever the attach did
        ctx.logger.warning("ctdb attach ctdb.tdb persistent failed (%d): %s", done.returncode, done.output)
