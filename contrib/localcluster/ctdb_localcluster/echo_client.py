"""Connects to ADDR:PORT, checks the echo, waits until the connection is reset,
then connects again. Prints one line per step with a monotonic time."""

import socket
import sys
import time

addr, port = sys.argv[1], int(sys.argv[2])


def connect() -> socket.socket:
    s = socket.create_connection((addr, port), timeout=10)
    s.sendall(b"hello\n")
    assert s.recv(100) == b"hello\n"
    return s


s = connect()
print(f"connected {time.monotonic():.6f}", flush=True)
s.settimeout(120)
try:
    data = s.recv(100)
    print(f"closed {time.monotonic():.6f} {data!r}", flush=True)
except ConnectionResetError:
    print(f"reset {time.monotonic():.6f}", flush=True)
except socket.timeout:
    print("timeout", flush=True)
    sys.exit(1)
for _ in range(100):
    try:
        s2 = connect()
        print(f"reconnected {time.monotonic():.6f}", flush=True)
        break
    except OSError:
        time.sleep(0.05)
