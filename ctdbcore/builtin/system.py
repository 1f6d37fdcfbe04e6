"""Built-in event plugin ``system``: 4.17's ``05.system.script`` (monitor only).

Entry point (group ``ctdb.services``): ``system = "ctdbcore.builtin.system"``.

At each monitor event it checks the usage of file systems and of memory against
thresholds ``warn[:unhealthy]`` in percent:

* ``CTDB_MONITOR_FILESYSTEM_USAGE="mount:warn[:unhealthy] ..."``; when unset, the
  mount point of each database directory (volatile, persistent, state) with warn=90
  and no unhealthy threshold (worked out once per daemon run and cached in the state
  directory, as 4.17 does). Usage is df's ``Capacity``: used / (used + available to
  non-root), rounded up, from :func:`os.statvfs` (4.17 runs ``df -kP``).
* ``CTDB_MONITOR_MEMORY_USAGE`` (default ``80``, warn only): used =
  MemTotal - MemAvailable (else MemFree + Cached + Buffers) + SwapTotal - SwapFree,
  as a truncated percentage of MemTotal + SwapTotal, from ``/proc/meminfo``.

The messages and the state are 4.17's: ``WARNING: <thing> utilization N% >= threshold
M%`` when a value at or over the warn threshold differs from the last one warned
about (so a steady value warns once), ``NOTICE: ... < threshold`` when it falls back
under, ``ERROR: ... >= threshold`` at or over the unhealthy threshold: the node becomes
UNHEALTHY, the remaining checks are skipped, and when memory has just crossed the
threshold its output also holds ``/proc/meminfo``, ``ps auxfww`` (and ``m`` is written
to ``/proc/sysrq-trigger``). Warnings and notices are logged; they are the output only
of a failing run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import attrs

from ctdbcore.builtin import common
from ctdbcore.builtin.common import Output
from ctdbcore.plugins import EventContext, hookimpl, setting

CTDB_ORDER = 5
#: Debian links 05.system into events/legacy on install.
CTDB_ENABLED_BY_DEFAULT = True

#: :func:`os.statvfs`, replaceable in tests.
statvfs: Callable[[str], os.statvfs_result] = os.statvfs

DEFAULTS_CACHE = "cache_filsystem_usage_defaults"  # sic, 4.17's name


@attrs.frozen
class Settings:
    """``[system]`` in ctdb.conf, or 4.17's variables in script.options /
    ``events/legacy/05.system.options``."""

    filesystem_usage: str = setting(
        "", var="CTDB_MONITOR_FILESYSTEM_USAGE",
        help='"mount:warn[:unhealthy] ..." (default: each database directory\'s file system at 90%)')
    memory_usage: str = setting(
        "80", var="CTDB_MONITOR_MEMORY_USAGE", help="warn[:unhealthy] percentage of memory and swap in use")


CTDB_SETTINGS = Settings


class _Unhealthy(Exception):
    """An unhealthy threshold was reached: the run ends (4.17 ``exit 1``)."""


def validate_percentage(value: str, thing: str, out: Output) -> bool:
    if value == "":
        return False
    if value.isascii() and value.isdigit() and (len(value) <= 2 or value == "100"):
        return True
    out.say(f'WARNING: {value} is an invalid percentage in "{thing}" check')
    return False


def _write(path: Path, text: str) -> None:
    """A cache write that cannot fail the check (4.17's ``echo >file`` on a full disk
    prints an error and the script goes on)."""
    try:
        path.write_text(text)
    except OSError:
        pass


def _cache_path(state_dir: Path, thing: str) -> Path:
    return state_dir / ("cache_" + thing.replace("/", "SLASH_").replace(" ", "_"))


def check_thresholds(state_dir: Path, thing: str, thresholds: str, usage: int, out: Output,
                     unhealthy_callout: Callable[[], None] | None = None) -> None:
    """4.17 ``check_thresholds``; raises :class:`_Unhealthy` at the unhealthy threshold."""
    if ":" in thresholds:
        warn = thresholds.rpartition(":")[0]
        unhealthy = thresholds.partition(":")[2]
    else:
        warn, unhealthy = thresholds, ""
    cache = _cache_path(state_dir, thing)
    try:
        prev_text = cache.read_text().split("\n", 1)[0].strip()
        have_cache = True
    except OSError:
        prev_text, have_cache = "0", False
    try:
        prev = int(prev_text)
    except ValueError:
        prev = 0
    if validate_percentage(unhealthy, thing, out) and usage >= int(unhealthy):
        out.say(f"ERROR: {thing} utilization {usage}% >= threshold {int(unhealthy)}%", "error")
        # Only when crossing: the previous value was under the threshold.
        if prev < int(unhealthy) and unhealthy_callout is not None:
            unhealthy_callout()
        _write(cache, f"{usage}\n")
        raise _Unhealthy
    if validate_percentage(warn, thing, out):
        if usage >= int(warn):
            if str(usage) == prev_text:
                return
            out.say(f"WARNING: {thing} utilization {usage}% >= threshold {int(warn)}%")
            _write(cache, f"{usage}\n")
        elif have_cache:
            out.say(f"NOTICE: {thing} utilization {usage}% < threshold {int(warn)}%", "info")
            try:
                cache.unlink(missing_ok=True)
            except OSError:
                pass


def filesystem_usage(path: str) -> int | None:
    """df's Capacity of the file system holding ``path`` (``df -kP``), or None."""
    try:
        st = statvfs(path)
    except OSError:
        return None
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    total = used + avail
    if total <= 0:
        return None
    quotient, remainder = divmod(used * 100, total)
    return quotient + (remainder != 0)


def mount_point(path: str) -> str | None:
    """The mount point of the file system holding ``path`` (df's ``Mounted on``)."""
    try:
        p = os.path.realpath(path)
        os.stat(p)
    except OSError:
        return None
    while not os.path.ismount(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def _db_dirs(ctx: EventContext) -> list[str]:
    db = getattr(getattr(ctx.config, "ctdb_conf", None), "database", None)
    if db is not None:
        return [db.volatile_dir, db.persistent_dir, db.state_dir]
    var = str(ctx.script_vardir.parent)
    return [os.path.join(var, d) for d in ("volatile", "persistent", "state")]


def default_filesystems(ctx: EventContext) -> str:
    """4.17 ``set_monitor_filsystem_usage_defaults``: ``mount:90`` for each database
    directory's file system, de-duplicated and sorted, cached for the daemon's run."""
    cache = ctx.state_dir / DEFAULTS_CACHE
    try:
        return cache.read_text().split("\n", 1)[0]
    except OSError:
        pass
    mounts = sorted({f"{m}:90" for m in map(mount_point, _db_dirs(ctx)) if m is not None})
    value = " ".join(mounts)
    _write(cache, value + "\n")
    return value


def monitor_filesystems(ctx: EventContext, out: Output) -> None:
    spec = ctx.settings.filesystem_usage or default_filesystems(ctx)
    for entry in spec.split():
        mount = entry.partition(":")[0]
        thresholds = entry.partition(":")[2] if ":" in entry else entry
        if not os.path.isdir(mount):
            out.say(f"WARNING: Directory {mount} does not exist")
            continue
        usage = filesystem_usage(mount)
        if usage is None:
            out.say(f"WARNING: Unable to get FS utilization for {mount}")
            continue
        check_thresholds(ctx.state_dir, f"Filesystem {mount}", thresholds, usage, out)


def memory_usage(meminfo: str) -> int:
    """4.17's formula over the text of ``/proc/meminfo``: percent of memory+swap in use."""
    values: dict[str, int] = {}
    memfree = memavail = 0
    for line in meminfo.splitlines():
        words = line.split()
        if len(words) < 2:
            continue
        key = words[0]
        try:
            num = int(words[1])
        except ValueError:
            continue
        if key == "MemAvailable:":
            memavail += num
        elif key in ("MemFree:", "Cached:", "Buffers:"):
            memfree += num
        elif key in ("MemTotal:", "SwapFree:", "SwapTotal:"):
            values[key] = num
    if memavail != 0:
        memfree = memavail
    memtotal, swaptotal = values.get("MemTotal:", 0), values.get("SwapTotal:", 0)
    if memtotal + swaptotal == 0:
        return 0
    used = memtotal - memfree + swaptotal - values.get("SwapFree:", 0)
    return int(used / (memtotal + swaptotal) * 100)


def dump_memory_info(ctx: EventContext, out: Output) -> None:
    """4.17 ``dump_memory_info``: /proc/meminfo and ``ps auxfww`` into the output, and
    ``m`` to /proc/sysrq-trigger (the kernel logs its memory state)."""
    meminfo = common.get_proc("meminfo")
    if meminfo:
        out.lines.append(meminfo.rstrip("\n"))
    ps = ctx.runner.run(("ps", "auxfww"), timeout=10)
    if ps.output:
        out.lines.append(ps.output)
    common.set_proc("sysrq-trigger", "m")


def monitor_memory(ctx: EventContext, out: Output) -> None:
    meminfo = common.get_proc("meminfo") or ""
    check_thresholds(ctx.state_dir, "System memory", ctx.settings.memory_usage or "80",
                     memory_usage(meminfo), out, lambda: dump_memory_info(ctx, out))


@hookimpl
def ctdb_monitor(ctx: EventContext) -> str | None:
    out = Output(ctx.logger)
    try:
        monitor_filesystems(ctx, out)
        monitor_memory(ctx, out)
    except _Unhealthy:
        return out.text()
    return None
