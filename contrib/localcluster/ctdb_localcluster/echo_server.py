"""An echo server for failover tests; like smbd it tells ctdbd about each client
connection (TCP_CLIENT) so that a node taking the address over can tickle it."""

import ipaddress
import os
import socket
import sys
import threading

from ctdbcore.client import Client
from ctdbcore.protocol.constants import CTRL_FLAG_NOREPLY, Opcode
from ctdbcore.protocol.types import Connection, SockAddr

port = int(sys.argv[1])
# One dual-stack socket serves the IPv4 and the IPv6 public addresses.
srv = socket.socket(socket.AF_INET6)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
srv.bind(("::", port))
srv.listen(16)
print("listening", flush=True)


def canonical(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """As smbd sends them: IPv4 clients of a dual-stack socket as plain IPv4."""
    a = ipaddress.ip_address(ip.split("%")[0])
    return a.ipv4_mapped if a.version == 6 and a.ipv4_mapped else a


def serve(conn: socket.socket) -> None:
    peer, local = conn.getpeername(), conn.getsockname()
    ctdb = None
    try:
        # Like smbd: register the connection and stay connected to ctdbd while it
        # lasts (ctdbd forgets a client's connections when the client goes away).
        ctdb = Client(os.environ["CTDB_SOCKET"], timeout=5)
        conn_info = Connection(src=SockAddr(ip=canonical(peer[0]), port=peer[1]),
                               dst=SockAddr(ip=canonical(local[0]), port=local[1]))
        ctdb.control(Opcode.TCP_CLIENT, conn_info.pack(), flags=CTRL_FLAG_NOREPLY)
    except Exception as e:  # the test then shows a slow reset, not a crash
        print(f"TCP_CLIENT failed: {e}", flush=True)
    try:
        while True:
            data = conn.recv(1024)
            if not data:
                break
            conn.sendall(data)
    except OSError:
        pass
    finally:
        if ctdb is not None:
            ctdb.close()


while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
