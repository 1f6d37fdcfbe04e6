"""4.17 `ctdb event status` output (golden strings) and the status store."""

from __future__ import annotations

import json

import pytest

from ctdbcore.plugins import EventRun, EventStatusStore, ScriptResult, format_event_status
from ctdbcore.plugins.status import event_status_command

T0 = 1697104800.25  # Thu Oct 12 10:00:00 2023 UTC


pytestmark = pytest.mark.usefixtures("utc")  # tests/unit/conftest.py


def r(name, status, state, dur=0.0125, output=""):
    return ScriptResult(name=name, status=status, state=state, start=T0, end=T0 + dur, output=output)


def test_golden_ok_and_error():
    run = EventRun(event="monitor", status=1, start=T0, end=T0 + 1, results=(
        r("00.ctdb", 0, "OK", 0.0034),
        r("example", 0, "OK", 0.0125),
        r("samba", 1, "ERROR", 1.5, "ERROR: samba not listening on TCP port 445"),
    ))
    assert format_event_status(run) == (
        "00.ctdb              OK         0.003 Thu Oct 12 10:00:00 2023\n"
        "example              OK         0.013 Thu Oct 12 10:00:00 2023\n"
        "samba                ERROR      1.500 Thu Oct 12 10:00:00 2023\n"
        "  OUTPUT: ERROR: samba not listening on TCP port 445\n"
    )
    assert event_status_command(run, "monitor") == (format_event_status(run), 1)


def test_golden_timedout_disabled_cannot_run():
    run = EventRun(event="monitor", status=-110, start=T0, end=T0 + 30, results=(
        r("10.disabled", -8, "DISABLED"),
        r("20.norun", -13, "CANNOT RUN"),
        r("a-very-long-plugin-name-here", -110, "TIMEDOUT", 30.0),
    ))
    assert format_event_status(run) == (
        "10.disabled          DISABLED  \n"
        "20.norun             CANNOT RUN (Permission denied)\n"
        "  OUTPUT: \n"
        "a-very-long-plugin-name-here TIMEDOUT   Thu Oct 12 10:00:00 2023\n"
        "  OUTPUT: \n"
    )
    assert event_status_command(run, "monitor")[1] == 110


def test_ctime_pads_the_day_with_a_space():
    run = EventRun(event="startup", status=0, start=0, end=0, results=(
        ScriptResult("x", 0, "OK", 1696320000.0, 1696320000.0),))  # Tue Oct  3 08:00:00 2023
    assert format_event_status(run) == "x                    OK         0.000 Tue Oct  3 08:00:00 2023\n"


def test_never_run_and_unknown_component():
    assert event_status_command(None, "monitor") == (
        "Event monitor has never run in legacy\n", 22)
    assert event_status_command(None, "monitor", "foo") == (
        "Event dir for foo does not exist\n", 2)


def test_store_roundtrip_and_atomic_file(tmp_path):
    store = EventStatusStore.in_rundir(tmp_path / "run")
    assert store.scriptstatus() == ("Event monitor has never run in legacy\n", 22)
    run = EventRun(event="monitor", status=0, start=T0, end=T0 + 1,
                   results=(r("example", 0, "OK"),))
    store.record(run)
    path = tmp_path / "run" / "eventstatus.json"
    data = json.loads(path.read_text())
    assert data["events"]["monitor"]["results"][0]["name"] == "example"
    assert [p.name for p in path.parent.iterdir()] == ["eventstatus.json"]  # no temp left
    again = EventStatusStore(path)
    assert again.get("monitor") == run
    assert again.scriptstatus() == (format_event_status(run), 0)
    assert again.get("startup") is None


def test_store_ignores_a_corrupt_file(tmp_path):
    path = tmp_path / "eventstatus.json"
    path.write_text("{not json")
    assert EventStatusStore(path).get("monitor") is None
    path.write_text('{"events": {"monitor": {"bogus": 1}}}')
    assert EventStatusStore(path).get("monitor") is None
