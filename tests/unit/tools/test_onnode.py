"""onnode (ctdb-reference §8.9) against a fake ONNODE_SSH and a fake nodes file."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FAKE_SSH = HERE / "fake_ssh.py"
STATUS_HEADER = ("|Node|IP|Disconnected|Unknown|Banned|Disabled|Unhealthy|Stopped|Inactive|"
                 "PartiallyOnline|ThisNode|\n")


@pytest.fixture
def env(tmp_path):
    nodes = tmp_path / "nodes"
    # PNN 0, 1, 2 (deleted), 3; blank lines take no PNN (§7.3).
    nodes.write_text("10.0.0.1\n\n  10.0.0.2\t\n#10.0.0.3\n10.0.0.4\n")
    status = tmp_path / "status"
    status.write_text(STATUS_HEADER
                      + "|0|10.0.0.1|0|0|0|0|0|0|0|0|Y|\n"
                      + "|1|10.0.0.2|0|0|0|0|1|0|0|0|N|\n"
                      + "|3|10.0.0.4|1|1|0|0|0|0|1|0|N|\n")
    e = {k: v for k, v in os.environ.items() if not k.startswith(("CTDB_", "ONNODE_"))}
    e.update(ONNODE_SSH=f"{sys.executable} {FAKE_SSH}", CTDB_NODES_FILE=str(nodes),
             FAKE_SSH_LOG=str(tmp_path / "log"), FAKE_STATUS=str(status),
             FAKE_NODES=str(nodes))
    return e


def onnode(env, *args, stdin=subprocess.DEVNULL):
    return subprocess.run([sys.executable, "-m", "ctdbcore.tools.onnode", *args], env=env,
                          capture_output=True, text=True, stdin=stdin, timeout=60)


def ssh_calls(env):
    path = Path(env["FAKE_SSH_LOG"])
    return [ast.literal_eval(line) for line in path.read_text().splitlines()] \
        if path.exists() else []


def test_single_node_no_header(env):
    p = onnode(env, "0", "echo", "hello", "$NODE")
    assert p.returncode == 0
    assert p.stdout == "hello 10.0.0.1\n"
    assert p.stderr == ""
    assert ssh_calls(env) == [["-n", "10.0.0.1", "echo hello $NODE"]]


def test_verbose_single_node_header(env):
    p = onnode(env, "-v", "1", "true")
    assert p.stderr == "\n>> NODE: 10.0.0.2 <<\n"


def test_all_skips_deleted_and_prints_headers(env):
    p = onnode(env, "all", "echo $NODE")
    assert p.returncode == 0
    assert p.stdout == "10.0.0.1\n10.0.0.2\n10.0.0.4\n"
    assert p.stderr == "".join(f"\n>> NODE: {a} <<\n" for a in ("10.0.0.1", "10.0.0.2",
                                                                 "10.0.0.4"))


def test_quiet_overrides_verbose(env):
    p = onnode(env, "-q", "-v", "all", "true")
    assert p.stderr == ""


def test_deleted_node_is_invalid(env):
    p = onnode(env, "2", "true")
    assert p.returncode == 1
    assert p.stderr == 'onnode: "node 2" does not exist\n'
    assert ssh_calls(env) == []


def test_missing_node(env):
    p = onnode(env, "7", "true")
    assert p.returncode == 1
    assert 'onnode: "node 7" does not exist' in p.stderr


def test_list_and_range(env):
    p = onnode(env, "-q", "3,0-1", "echo $NODE")
    assert p.stdout == "10.0.0.4\n10.0.0.1\n10.0.0.2\n"


def test_invalid_nodespec(env):
    p = onnode(env, "bogus", "true")
    assert p.returncode == 1
    assert p.stderr.startswith("Invalid <nodespec>\n\nUsage: onnode [OPTION] ...")


def test_names_with_n(env):
    p = onnode(env, "-n", "somehost", "echo $NODE")
    assert p.stdout == "somehost\n"


def test_usage_without_command(env):
    p = onnode(env, "all")
    assert p.returncode == 1
    assert p.stderr.startswith("Usage: onnode")


def test_exit_code_is_last_failure(env):
    p = onnode(env, "-q", "all", 'case $NODE in 10.0.0.1) exit 3;; 10.0.0.2) exit 5;; esac')
    assert p.returncode == 5
    p = onnode(env, "-q", "all", 'case $NODE in 10.0.0.1) exit 3;; esac')
    assert p.returncode == 3


def test_parallel_prefixes_and_exit_code(env):
    p = onnode(env, "-p", "all", 'echo out $NODE; echo err >&2; [ $NODE != 10.0.0.2 ]')
    assert p.returncode == 1
    lines = sorted(p.stdout.splitlines())
    assert lines == sorted(f"[{a}] {w}" for a in ("10.0.0.1", "10.0.0.2", "10.0.0.4")
                           for w in (f"out {a}", "err"))
    assert all(c[0] == "-n" for c in ssh_calls(env))


def test_parallel_single_node_no_prefix(env):
    p = onnode(env, "-p", "0", "echo $NODE")
    assert p.stdout == "10.0.0.1\n"


def test_healthy_and_connected(env):
    p = onnode(env, "-q", "ok", "echo $NODE")
    assert p.stdout == "10.0.0.1\n"
    p = onnode(env, "-q", "healthy", "echo $NODE")
    assert p.stdout == "10.0.0.1\n"
    p = onnode(env, "-q", "con", "echo $NODE")
    assert p.stdout == "10.0.0.1\n10.0.0.2\n"
    assert ["-n", "10.0.0.1", "ctdb -X status"] in ssh_calls(env)


def test_status_from_first_answering_node(env):
    env["FAKE_DOWN"] = "10.0.0.1"
    p = onnode(env, "-q", "connected", "true")
    calls = ssh_calls(env)
    assert calls[:2] == [["-n", "10.0.0.1", "ctdb -X status"],
                         ["-n", "10.0.0.2", "ctdb -X status"]]
    assert p.returncode == 255  # the command itself then fails on the down node


def test_status_unavailable(env):
    env["FAKE_DOWN"] = "10.0.0.1,10.0.0.2,10.0.0.4"
    p = onnode(env, "ok", "true")
    assert p.returncode == 1
    assert p.stderr.startswith("onnode: unable to get status of CTDB nodes")


def test_any_picks_answering_node(env):
    env["FAKE_DOWN"] = "10.0.0.1"
    p = onnode(env, "any", "echo $NODE")
    assert p.stdout == "10.0.0.2\n"


def test_stdin_kept_with_i(env):
    p = subprocess.run(
        [sys.executable, "-m", "ctdbcore.tools.onnode", "-i", "0", "cat"], env=env,
        input="piped\n", capture_output=True, text=True, timeout=60)
    assert p.stdout == "piped\n"
    assert ssh_calls(env) == [["10.0.0.1", "cat"]]
    p = subprocess.run([sys.executable, "-m", "ctdbcore.tools.onnode", "0", "cat"], env=env,
                       input="piped\n", capture_output=True, text=True, timeout=60)
    assert p.stdout == ""


def test_nodes_file_sources(env, tmp_path):
    other = tmp_path / "other"
    other.write_text("192.0.2.9\n")
    p = onnode(env, "-f", str(other), "0", "echo $NODE")
    assert p.stdout == "192.0.2.9\n"
    base = tmp_path / "base"
    base.mkdir()
    (base / "nodes").write_text("192.0.2.7\n")
    (base / "relative").write_text("192.0.2.8\n")
    env2 = dict(env, CTDB_BASE=str(base))
    del env2["CTDB_NODES_FILE"]
    assert onnode(env2, "0", "echo $NODE").stdout == "192.0.2.7\n"
    assert onnode(env2, "-f", "relative", "0", "echo $NODE").stdout == "192.0.2.8\n"
    env2["CTDB_BASE"] = str(tmp_path / "missing")
    p = onnode(env2, "0", "true")
    assert p.returncode == 1
    assert "unable to open nodes file" in p.stderr


def test_current_directory(env, tmp_path):
    p = subprocess.run([sys.executable, "-m", "ctdbcore.tools.onnode", "-c", "0", "pwd"],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert p.stdout == f"{tmp_path}\n"
