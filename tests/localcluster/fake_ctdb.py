#!/usr/bin/env python3
"""Stand-in for the ctdb tool: `-X status` says every node of $CTDB_BASE/nodes is OK."""
import os
import sys

if sys.argv[1:] == ["-X", "status"] or sys.argv[1:] == ["status"]:
    if not os.path.exists(os.environ["CTDB_SOCKET"]):
        print("connection to daemon failed", file=sys.stderr)
        sys.exit(1)
    print("|Node|IP|Disconnected|Unknown|Banned|Disabled|Unhealthy|Stopped|Inactive|"
          "PartiallyOnline|ThisNode|")
    with open(os.path.join(os.environ["CTDB_BASE"], "nodes")) as f:
        for pnn, addr in enumerate(line.strip() for line in f if line.strip()):
            print(f"|{pnn}|{addr}|0|0|0|0|0|0|0|0|N|")
    sys.exit(0)
sys.exit(2)
