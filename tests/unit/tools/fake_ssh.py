#!/usr/bin/env python3
"""Fake ONNODE_SSH: `fake_ssh.py [-n] ADDR CMD`.

Logs its argv to $FAKE_SSH_LOG, answers `ctdb -X status` from $FAKE_STATUS and `ctdb pnn`
from the nodes file, fails for addresses listed in $FAKE_DOWN, else runs CMD with sh.
"""
import os
import subprocess
import sys

args = sys.argv[1:]
no_stdin = args[:1] == ["-n"]
if no_stdin:
    args = args[1:]
addr, command = args[0], " ".join(args[1:])
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(repr(sys.argv[1:]) + "\n")
if addr in os.environ.get("FAKE_DOWN", "").split(","):
    print(f"ssh: connect to host {addr}: Connection refused", file=sys.stderr)
    sys.exit(255)
if command == "ctdb -X status":
    with open(os.environ["FAKE_STATUS"]) as f:
        sys.stdout.write(f.read())
    sys.exit(0)
if command == "ctdb pnn":
    with open(os.environ["FAKE_NODES"]) as f:
        entries = [line.strip() for line in f if line.strip()]
    print(entries.index(addr))
    sys.exit(0)
env = dict(os.environ, NODE=addr)
stdin = subprocess.DEVNULL if no_stdin else None
sys.exit(subprocess.run(["sh", "-c", command], env=env, stdin=stdin).returncode)
