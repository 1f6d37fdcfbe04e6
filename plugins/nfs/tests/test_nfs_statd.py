"""ctdb-statd-callout's commands against a stand-in for ctdbd (public addresses and
ctdb.tdb in memory); smnotify and the callout are recorded."""

from __future__ import annotations

import pytest

from ctdbcore.testing import RecordingRunner

from ctdb_nfs import statd


class FakeCluster:
    def __init__(self, pnn=0, ips=(("10.0.0.1", 0), ("10.0.0.2", 1), ("10.0.0.3", 0))):
        self.pnn, self.ips, self.db, self.commits = pnn, list(ips), {}, []

    def public_ips(self):
        return list(self.ips)

    def commit(self, items):
        self.commits.append(list(items))
        for k, v in items:
            if v:
                self.db[k] = v
            else:
                self.db.pop(k, None)

    def records(self):
        return sorted(self.db.items())

    def close(self):
        pass


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("NFS_HOSTNAME", "nfs.example")
    monkeypatch.delenv("CTDB_NFS_CALLOUT", raising=False)
    c = FakeCluster()
    r = RecordingRunner()

    def run(*args):
        return statd.main(["--state-dir", str(tmp_path / "st"), "--statd-dir", str(tmp_path / "statd"),
                           "--smnotify", "/x/smnotify", *args], runner=r, cluster_factory=lambda sock: c)

    return c, r, run, tmp_path / "st"


def test_add_client_writes_one_file_per_held_address(env, monkeypatch):
    c, r, run, st = env
    monkeypatch.setattr(statd.time, "time", lambda: 1700000000.5)
    assert run("add-client", "192.0.2.7") == 0
    assert sorted(p.name for p in st.iterdir()) == ["statd-state@10.0.0.1@192.0.2.7", "statd-state@10.0.0.3@192.0.2.7"]
    assert (st / "statd-state@10.0.0.1@192.0.2.7").read_text() == '"statd-state@10.0.0.1@192.0.2.7" "1700000000"\n'
    assert c.commits == []  # nothing cluster-wide until update
    assert run("del-client", "192.0.2.7") == 0
    assert (st / "statd-state@10.0.0.1@192.0.2.7").read_text() == '"statd-state@10.0.0.1@192.0.2.7" ""\n'


def test_update_pushes_lines_of_held_addresses_in_one_transaction(env):
    c, r, run, st = env
    run("add-client", "192.0.2.7")
    c.ips = [("10.0.0.1", 0), ("10.0.0.2", 1), ("10.0.0.3", 1)]  # 10.0.0.3 moved away
    assert run("update") == 0
    assert len(c.commits) == 1
    assert [k for k, _ in c.commits[0]] == ["statd-state@10.0.0.1@192.0.2.7"]
    assert list(st.iterdir()) == []  # all files removed, as 4.17 `rm $files`
    assert run("update") == 0 and len(c.commits) == 1  # no files: nothing


def test_notify_restarts_the_lock_manager_sends_notifies_and_deletes(env, tmp_path, monkeypatch):
    c, r, run, st = env
    monkeypatch.setattr(statd.time, "sleep", lambda s: None)
    monkeypatch.setattr(statd.time, "time", lambda: 1001.0)
    monkeypatch.setenv("CTDB_NFS_CALLOUT", "/x/callout")
    (tmp_path / "statd/sm").mkdir(parents=True)
    (tmp_path / "statd/sm/client1").write_text("x")
    c.db = {"statd-state@10.0.0.1@192.0.2.7": "5", "statd-state@10.0.0.2@192.0.2.8": "5", "other": "x"}
    st.mkdir()
    (st / "statd-state@10.0.0.2@192.0.2.9").write_text("stale")
    assert run("notify") == 0
    assert not (tmp_path / "statd/sm/client1").exists()
    assert r.calls[:2] == [("/x/callout", "stop", "nlockmgr"), ("/x/callout", "start", "nlockmgr")]
    sm = [c_ for c_ in r.calls if c_[0] == "/x/smnotify"]
    assert sm == [("/x/smnotify", "--client=192.0.2.7", "--ip=10.0.0.1", f"--server={s}", f"--stateval={v}")
                  for v in (1000, 1001) for s in ("10.0.0.1", "nfs.example")]
    assert c.db == {"statd-state@10.0.0.2@192.0.2.8": "5", "other": "x"}
    assert not (st / "statd-state@10.0.0.2@192.0.2.9").exists()


def test_notify_with_a_builtin_backend(env, monkeypatch):
    import ctdbcore.plugins.service as service

    monkeypatch.setattr(service, "init_style", lambda init_dir="/etc/init.d": "systemd")
    monkeypatch.setattr(statd.time, "sleep", lambda s: None)
    c, r, run, st = env
    assert run("--nfs-backend", "kernel", "notify") == 0
    assert r.calls == [("systemctl", "stop", "rpc-statd"), ("systemctl", "start", "rpc-statd")]
    r.clear()
    assert run("--nfs-backend", "ganesha", "notify") == 0
    assert r.calls == []


def test_no_nfs_hostname_fails(env, monkeypatch, capsys):
    c, r, run, st = env
    monkeypatch.delenv("NFS_HOSTNAME")
    monkeypatch.setattr(statd, "nfs_hostname", lambda runner: (_ for _ in ()).throw(
        statd.StatdError("NFS_HOSTNAME is not configured. statd-callout failed")))
    assert run("update") == 1
    assert "NFS_HOSTNAME is not configured. statd-callout failed" in capsys.readouterr().err


def test_ptrans_lines_round_trip():
    line = statd.ptrans_line("statd-state@10.0.0.1@h", "12")
    assert statd.parse_ptrans_line(line) == ("statd-state@10.0.0.1@h", "12")
    assert statd.parse_ptrans_line("garbage") is None
