"""statistics, debug levels, process-exists and tfetch/tstore argument parsing as 4.17's
tools/ctdb.c and common/logging.c do them."""

from __future__ import annotations

import io
import os
import time

import pytest

from ctdbcore.daemon.logsetup import NOTICE, python_level, wire_level
from ctdbcore.protocol import types as T
from ctdbcore.protocol.statistics import LatencyCounter
from ctdbcore.tools import ctdb_admin as A


class _T:
    def __init__(self) -> None:
        self.err = io.StringIO()

    def eprint(self, text: str) -> None:
        self.err.write(text)


def _stats(**kw) -> T.Statistics:
    return T.Statistics(statistics_start_time=T.Timeval(1000, 0),
                        statistics_current_time=T.Timeval(1000 + 90061, 5), **kw)


def test_statistics_text_layout() -> None:
    s = _stats(num_clients=2, node_req_call=3, client_req_control=12, locks_num_failed=1,
               pending_childwrite_calls=4, hop_count_bucket=(1,) + (0,) * 15,
               call_latency=LatencyCounter(num=2, min=0.5, max=1.5, total=2.0))
    text = A.format_statistics(s)
    lines = text.splitlines()
    assert lines[0] == "CTDB version 1"
    assert lines[1] == "Current time of statistics  :                " + time.ctime(91061)
    # 1 day 1 hour 1 minute 1 second
    assert lines[2] == "Statistics collected since  : (001 01:01:01) " + time.ctime(1000)
    assert lines[3] == " num_clients                        2"
    assert " node\n     req_call                       3\n" in text
    assert " client\n     req_call                       0\n     req_message                    0\n" \
           "     req_control                   12\n" in text
    assert "     num_failed                     1\n" in text
    # a name longer than 22 characters pushes the column right, as in 4.17
    assert " pending_childwrite_calls             4\n" in text
    assert " hop_count_buckets: 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n" in text
    assert " call_latency       MIN/AVG/MAX     0.500000/1.000000/1.500000 sec out of 2\n" in text
    assert lines[-1] == " childwrite_latency MIN/AVG/MAX     0.000000/0.000000/0.000000 sec out of 0"
    assert len(lines) == 3 + 38 + 4 + 2 + 5  # header, fields, 4 group headers, buckets, latencies


def test_statistics_machine() -> None:
    s = _stats(num_clients=2, reclock_ctdbd=LatencyCounter(num=1, min=0.25, max=0.25, total=0.25))
    header, values = A.format_statistics_machine(s, "|", True).splitlines()
    assert header.startswith("CTDB version|Current time of statistics|Statistics collected since|num_clients|")
    assert "|node.req_call|" in header and header.endswith("|avg_childwrite_latency|max_childwrite_latency|")
    assert values.startswith("1|91061|1000|2|0|")
    assert "|1|0.250000|0.250000|0.250000|0|0.000000|" in values
    assert len(header.split("|")) == len(values.split("|")) == 3 + 38 + 20 + 1
    assert A.format_statistics_machine(s, ":", False).count("\n") == 1


@pytest.mark.parametrize("text,level", [
    ("ERROR", 0), ("err", 0), ("warning", 1), ("W", 1), ("NOTICE", 3), ("n", 3), ("INFO", 5),
    ("debug", 10), ("", 0), ("0", 0), ("2", 2), ("10", 10), ("1x", 1), ("11", None),
    ("x", None), ("ERRORS", None), ("-1", None),
])
def test_debug_level_parse(text, level) -> None:
    assert A.debug_level_parse(text) == level


def test_debug_level_to_string() -> None:
    assert [A.debug_level_to_string(n) for n in (0, 1, 2, 3, 4, 5, 9, 10, 11, -1)] == [
        "ERROR", "WARNING", "WARNING", "NOTICE", "NOTICE", "INFO", "INFO", "DEBUG", "UNKNOWN", "UNKNOWN"]


def test_daemon_debug_levels_are_samba_dbglvl() -> None:
    assert [wire_level(n) for n in ("ERROR", "WARNING", "NOTICE", "INFO", "DEBUG", "4")] == [0, 1, 3, 5, 10, 4]
    import logging

    assert [python_level(n) for n in (0, 1, 2, 3, 4, 5, 9, 10)] == [
        logging.ERROR, logging.WARNING, logging.WARNING, NOTICE, NOTICE, logging.INFO, logging.INFO, logging.DEBUG]


def test_str_to_data() -> None:
    t = _T()
    assert A.str_to_data(t, "plain") == b"plain"
    assert A.str_to_data(t, "0x6B32ff") == b"k2\xff"
    assert A.str_to_data(t, "0x") == b""
    assert A.str_to_data(t, "0xABC") is None
    assert A.str_to_data(t, "0x6G32") is None
    assert t.err.getvalue() == "Key (ABC) contains odd number of hex digits\nInvalid hex: 6G32\n"


def test_strtoull_and_atoi() -> None:
    assert A._strtoull("0x10") == 16 and A._strtoull("010") == 8 and A._strtoull("12abc") == 12
    assert A._strtoull("0x") == 0  # "0", then junk
    for bad in ("zz", "", "-1", " -1"):
        with pytest.raises(ValueError):
            A._strtoull(bad)
    with pytest.raises(OverflowError):
        A._strtoull("99999999999999999999999")
    assert [A._atoi(s) for s in ("12", " 7x", "abc", "-3", "4294967297")] == [12, 7, 0, -3, 1]


def test_tstore_then_tfetch_a_local_file(tmp_path) -> None:
    from ctdbcore.db.tdb import Tdb

    path = str(tmp_path / "t.tdb")
    Tdb.open(path).close()

    class Tool(_T):
        def __init__(self) -> None:
            super().__init__()
            self.out = io.StringIO()

        def print(self, text: str) -> None:
            self.out.write(text)

        def usage(self, name: str):
            raise AssertionError(name)

    t = Tool()
    assert A.control_tstore(t, [path, "0x6b", "0x00ff41", "7", "3"]) == 0
    out_file = str(tmp_path / "rec")
    assert A.control_tfetch(t, [path, "k", out_file]) == 0
    assert t.out.getvalue() == 'dmaster: 3\nrsn: 7\nflags: 0x00000000\ndata(3) = "\\00\\FFA"\n'
    with open(out_file, "rb") as f:
        assert f.read()[24:] == b"\x00\xffA"
    assert oct(os.stat(out_file).st_mode & 0o777) == "0o600"
    assert A.control_tfetch(t, [path, "nokey"]) == 1
    assert A.control_tstore(t, [path, "k", "0x1"]) == 22
    assert t.err.getvalue() == ("No record for key nokey\n"
                                "Key (1) contains odd number of hex digits\nFailed to parse value 0x1\n")
