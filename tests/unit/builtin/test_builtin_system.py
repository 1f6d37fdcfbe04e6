"""05.system as a plugin: 4.17's thresholds, messages and state, on fake meminfo files
and stubbed statvfs results."""

from __future__ import annotations

import os
import types

import pytest

from ctdbcore.builtin import common, system
from ctdbcore.config.ctdbconf import CtdbConf, DatabaseConfig


def meminfo(total: int, avail: int | None = None, free: int = 0, cached: int = 0, buffers: int = 0,
            swap_total: int = 0, swap_free: int = 0) -> str:
    lines = [f"MemTotal:       {total} kB", f"MemFree:        {free} kB"]
    if avail is not None:
        lines.append(f"MemAvailable:   {avail} kB")
    lines += [f"Buffers:        {buffers} kB", f"Cached:         {cached} kB", "SwapCached:     999999 kB",
              f"SwapTotal:      {swap_total} kB", f"SwapFree:       {swap_free} kB"]
    return "\n".join(lines) + "\n"


class FakeFs:
    """statvfs results by path: ``used`` percent of 1000 blocks, all of the rest available."""

    def __init__(self) -> None:
        self.usage: dict[str, tuple[int, int, int]] = {}

    def set(self, path: str, blocks: int, free: int, avail: int) -> None:
        self.usage[path] = (blocks, free, avail)

    def __call__(self, path: str) -> os.statvfs_result:
        blocks, free, avail = self.usage[path]
        return os.statvfs_result((4096, 4096, blocks, free, avail, 100, 50, 50, 0, 255))


@pytest.fixture
def proc(tmp_path, monkeypatch):
    d = tmp_path / "proc"
    d.mkdir()
    (d / "meminfo").write_text(meminfo(1000, avail=900))
    monkeypatch.setattr(common, "PROC_DIR", str(d))
    return d


@pytest.fixture
def fs(monkeypatch):
    fake = FakeFs()
    monkeypatch.setattr(system, "statvfs", fake)
    return fake


@pytest.fixture
def harness(plugin_harness, proc, fs):
    def make(**settings):
        return plugin_harness(system, "system", settings=settings)

    return make


@pytest.fixture
def mount(tmp_path):
    """mount(name): a directory standing for a mount point (its usage comes from ``fs``)."""

    def make(name: str) -> str:
        path = tmp_path / "mnt" / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    return make


@pytest.mark.parametrize(("text", "want"), [
    (meminfo(1000, avail=900), 10),
    # MemAvailable wins over MemFree + Cached + Buffers
    (meminfo(1000, avail=250, free=900, cached=50), 75),
    # without MemAvailable: MemFree + Cached + Buffers (not SwapCached)
    (meminfo(1000, free=100, cached=100, buffers=50), 75),
    # swap counts: (1000-500 + 1000-200) / 2000 = 65%
    (meminfo(1000, avail=500, swap_total=1000, swap_free=200), 65),
    # truncated, not rounded: 799/1000
    (meminfo(1000, avail=201), 79),
    ("", 0),
])
def test_memory_formula_is_4_17s(text, want) -> None:
    assert system.memory_usage(text) == want


def test_filesystem_usage_is_dfs_capacity_rounded_up(fs) -> None:
    fs.set("/x", 1000, 100, 100)  # used 900 of 900+100 = 90%
    assert system.filesystem_usage("/x") == 90
    fs.set("/x", 1000, 99, 99)  # 901/1000 → 91 (df rounds up)
    assert system.filesystem_usage("/x") == 91
    # root-reserved blocks do not count as available: used 500 / (500 + 400)
    fs.set("/x", 1000, 500, 400)
    assert system.filesystem_usage("/x") == 56
    fs.set("/x", 0, 0, 0)
    assert system.filesystem_usage("/x") is None


def test_filesystem_usage_of_a_real_mount_matches_df() -> None:
    import subprocess

    df = subprocess.run(["df", "-kP", "/"], capture_output=True, text=True, check=True).stdout
    capacity = int(df.splitlines()[1].split()[4].rstrip("%"))
    assert system.filesystem_usage("/") == capacity


def test_warning_once_per_value_then_notice_when_back_under(harness, fs, caplog, mount) -> None:
    m = mount("a")
    h2 = harness(filesystem_usage=f"{m}:90")
    fs.set(m, 1000, 100, 100)  # 90%
    caplog.set_level("INFO", logger="ctdb.plugins")
    assert h2.output("monitor") == (0, "")
    assert f"WARNING: Filesystem {m} utilization 90% >= threshold 90%" in caplog.text
    caplog.clear()
    assert h2.output("monitor") == (0, "")
    assert "WARNING" not in caplog.text  # the same value: not again
    fs.set(m, 1000, 90, 90)  # 91%: a new value warns again
    h2.run("monitor")
    assert "utilization 91% >= threshold 90%" in caplog.text
    caplog.clear()
    fs.set(m, 1000, 500, 500)
    h2.run("monitor")
    assert f"NOTICE: Filesystem {m} utilization 50% < threshold 90%" in caplog.text
    caplog.clear()
    h2.run("monitor")
    assert "NOTICE" not in caplog.text  # only once


def test_unhealthy_threshold_fails_and_stops_the_checks(harness, fs, proc, mount) -> None:
    a, b = mount("a"), mount("b")
    (proc / "meminfo").write_text(meminfo(1000, avail=50))  # 95%: would warn
    fs.set(a, 1000, 40, 40)  # 96%
    fs.set(b, 1000, 0, 0)
    h = harness(filesystem_usage=f"{a}:90:95 {b}:90")
    status, out = h.output("monitor")
    assert status == 1
    assert out == f"ERROR: Filesystem {a} utilization 96% >= threshold 95%"
    # back under the unhealthy threshold but over warn: healthy, warned (value changed)
    fs.set(a, 1000, 70, 70)
    status, out = h.output("monitor")
    assert status == 0


def test_unhealthy_keeps_failing_and_output_keeps_earlier_warnings(harness, fs, mount) -> None:
    a, b = mount("a"), mount("b")
    fs.set(a, 1000, 50, 50)  # 95%: warn
    fs.set(b, 1000, 10, 10)  # 99%
    h = harness(filesystem_usage=f"{a}:90 {b}:80:98")
    error = f"ERROR: Filesystem {b} utilization 99% >= threshold 98%"
    warning = f"WARNING: Filesystem {a} utilization 95% >= threshold 90%"
    assert h.output("monitor") == (1, f"{warning}\n{error}")
    # the warning is not repeated for the same value; the error is
    assert h.output("monitor") == (1, error)


def test_memory_unhealthy_dumps_meminfo_and_ps_only_when_crossing(harness, proc) -> None:
    h = harness(filesystem_usage="", memory_usage="70:90")
    h.runner.respond(["ps", "auxfww"], stdout="USER PID ... ctdbd\n")
    (proc / "meminfo").write_text(meminfo(1000, avail=50))  # 95%
    status, out = h.output("monitor")
    assert status == 1
    assert out.startswith("ERROR: System memory utilization 95% >= threshold 90%")
    assert "MemTotal:       1000 kB" in out and "USER PID ... ctdbd" in out
    assert (proc / "sysrq-trigger").read_text() == "m\n"
    assert h.runner.commands("ps") == [("ps", "auxfww")]
    # still over: an error again, but no second dump
    status, out = h.output("monitor")
    assert status == 1 and out == "ERROR: System memory utilization 95% >= threshold 90%"
    assert len(h.runner.commands("ps")) == 1


def test_memory_default_is_warn_only_at_80(harness, proc, caplog) -> None:
    h = harness()
    (proc / "meminfo").write_text(meminfo(1000, avail=0))  # 100%
    caplog.set_level("INFO", logger="ctdb.plugins")
    assert h.output("monitor") == (0, "")
    assert "WARNING: System memory utilization 100% >= threshold 80%" in caplog.text


def test_invalid_percentages_and_missing_mounts_warn(harness, fs, caplog, mount) -> None:
    a = mount("a")
    fs.set(a, 1000, 500, 500)
    h = harness(filesystem_usage=f"{a}:x:101 /no/such/dir:90 {a}", memory_usage="")
    caplog.set_level("INFO", logger="ctdb.plugins")
    assert h.output("monitor") == (0, "")
    # "x:101": warn "x", unhealthy "101" (4.17's ${t%:*} and ${t#*:})
    assert f'WARNING: 101 is an invalid percentage in "Filesystem {a}" check' in caplog.text
    assert f'WARNING: x is an invalid percentage in "Filesystem {a}" check' in caplog.text
    assert "WARNING: Directory /no/such/dir does not exist" in caplog.text
    # an entry without ":" is its own threshold (4.17's ${_fs#*:})
    assert f'WARNING: {a} is an invalid percentage in "Filesystem {a}" check' in caplog.text


def test_default_filesystems_are_the_database_dirs_mounts(plugin_harness, tmp_path, proc) -> None:
    var = tmp_path / "var"
    for d in ("volatile", "persistent", "state"):
        (var / d).mkdir(parents=True)
    config = types.SimpleNamespace(ctdb_conf=CtdbConf(database=DatabaseConfig.for_var_dir(str(var))))
    h = plugin_harness(system, "system", config=config)
    assert h.output("monitor") == (0, "")
    cache = h.plugin_ctx.state_dir / system.DEFAULTS_CACHE
    want = system.mount_point(str(var))
    assert cache.read_text() == f"{want}:90\n"
    # cached: a later change of the directories is not seen in this daemon run
    cache.write_text("/nonexistent:90\n")
    assert system.default_filesystems(h.plugin_ctx) == "/nonexistent:90"


def test_this_machine_is_healthy_with_the_defaults(plugin_harness, tmp_path) -> None:
    """What every test cluster runs: the defaults on this machine must not fail."""
    var = tmp_path / "var"
    for d in ("volatile", "persistent", "state"):
        (var / d).mkdir(parents=True)
    config = types.SimpleNamespace(ctdb_conf=CtdbConf(database=DatabaseConfig.for_var_dir(str(var))))
    h = plugin_harness(system, "system", config=config)
    assert h.output("monitor") == (0, "")
