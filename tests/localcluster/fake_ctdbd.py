#!/usr/bin/env python3
"""Stand-in for ctdbd in plumbing tests: binds $CTDB_SOCKET and <node address>:4379, sleeps."""
import os
import signal
import socket
import sys
import time

base = os.environ["CTDB_BASE"]
address = None
with open(os.path.join(base, "ctdb.conf")) as f:
    for line in f:
        key, _, value = line.strip().partition("=")
        if key.strip() == "node address":
            address = value.strip()
unix = socket.socket(socket.AF_UNIX)
unix.bind(os.environ["CTDB_SOCKET"])
unix.listen()
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind((address, 4379))
tcp.listen()
print(f"fake ctdbd {sys.argv[1:]} on {address}", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(3600)
