"""ping_pong (ctdb-reference §8.10), bounded with our --count/--time options."""

import subprocess
import sys

from ctdbcore.tools import ping_pong


def pp(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "ctdbcore.tools.ping_pong", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_two_processes_see_increment_two(tmp_path):
    f = str(tmp_path / "pp.dat")
    procs = [pp("-rw", f, "3", "--time", "3") for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    for out, _err in outs:
        assert "data increment = 2\n" in out
        assert " locks/sec" in out  # (text mode turns the \\r into \\n)


def test_single_process_increment_one(tmp_path, capsys):
    f = tmp_path / "pp.dat"
    assert ping_pong.main(["-rw", str(f), "2", "--count", "200"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("data increment = 1\n")
    assert f.stat().st_size == 3  # ftruncate(num_locks + 1)


def test_mmap_and_check(tmp_path, capsys):
    assert ping_pong.main(["-rwmc", str(tmp_path / "pp.dat"), "3", "--count=100"]) == 0
    assert "data increment = 1" in capsys.readouterr().out


def test_rate_line_format(tmp_path, capsys):
    assert ping_pong.main([str(tmp_path / "pp.dat"), "2", "--time", "1.2"]) == 0
    out = capsys.readouterr().out
    rate = out.split("\r")[0]
    assert rate.endswith(" locks/sec") and len(rate) >= 8 + len(" locks/sec")
    assert rate[:8].strip().isdigit()


def test_lock_test_holder_and_second(tmp_path):
    f = str(tmp_path / "lock")
    holder = pp("-l", f, stdin=subprocess.PIPE)
    assert holder.stdout.readline() == "Holding lock, press any key to continue...\n"
    assert holder.stdout.readline() == "You should run the same command on another node now.\n"
    second = pp("-l", f)
    out, _ = second.communicate(timeout=30)
    assert second.returncode == 0
    lines = out.splitlines()
    assert lines[0] == "file already locked, calling check_lock to tell us who has it locked:"
    assert lines[1] == (f"check_lock failed: lock held: pid='{holder.pid}', type='1', "
                        "start='0', len='1'")
    assert lines[2] == "Working POSIX byte range locks"
    out, _ = holder.communicate("x\n", timeout=30)
    assert out == "Good bye.\n"


def test_usage_and_errors(tmp_path, capsys):
    assert ping_pong.main([]) == 1
    assert capsys.readouterr().out.startswith("ping_pong -rwmc <file> <num_locks>\n")
    assert ping_pong.main([str(tmp_path / "f"), "0"]) == 1
    assert capsys.readouterr().out == "num_locks should be > 0\n"
    assert ping_pong.main(["-x", str(tmp_path / "f"), "2"]) == 1
    assert "Unknown option" in capsys.readouterr().err
