"""The async client against real daemons: many tasks share one connection, records
migrate, messages arrive, traverse streams, and a chain lock held by another process
is waited for without stalling the event loop."""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest

from ctdbcore.client.aio import AsyncClient

pytestmark = pytest.mark.slow


def test_async_client_end_to_end(local_cluster) -> None:
    lc = local_cluster(n=2, loopback=True, loopback_base=181)
    lc.wait_ok(timeout=30)

    async def main() -> None:
        async with await AsyncClient.connect(lc.socket(0)) as c0, await AsyncClient.connect(lc.socket(1)) as c1:
            assert (c0.pnn, c1.pnn) == (0, 1)
            db0 = await c0.attach("async.tdb")
            db1 = await c1.attach("async.tdb")

            # 20 tasks on one connection, each its own record
            async def writer(i: int) -> None:
                await db0.store(f"k{i}".encode(), f"v{i}".encode())

            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(writer, i)
            # node 1 takes them over one by one
            assert [await db1.fetch(f"k{i}".encode()) for i in range(20)] == [f"v{i}".encode() for i in range(20)]
            async with db1.fetch_lock(b"k0") as rec:
                assert rec.header.dmaster == 1

            seen = sorted([r.key async for r in db0.traverse()])
            assert seen == sorted(f"k{i}".encode() for i in range(20))

            # messages between the two clients, through both daemons
            srvid = c1.next_srvid()
            await c1.register_srvid(srvid)
            await c0.send_message(1, srvid, b"hello")
            assert await c1.receive(srvid, timeout=5) == b"hello"

            # another process holds k5's chain lock on node 1: the event loop keeps running
            holder = subprocess.Popen([sys.executable, "-c", f"""
import os, sys, time
from ctdbcore.db.tdb import Tdb
t = Tdb.open({db1.path!r}, tdb_flags={db1.tdb.get_flags()}, open_flags=os.O_RDWR)
t.chainlock(b"k5"); print("held", flush=True); time.sleep(1.0); t.chainunlock(b"k5"); time.sleep(2)
"""], stdout=subprocess.PIPE, text=True)
            assert holder.stdout.readline().strip() == "held"
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await anyio.sleep(0.05)
                    ticks += 1

            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                async with db1.fetch_lock(b"k5") as rec:
                    rec.store(b"after the wait")
                tg.cancel_scope.cancel()
            assert ticks >= 10, "the loop stalled while the lock was held elsewhere"
            holder.kill()
            holder.wait()
            assert await db0.fetch(b"k5") == b"after the wait"
            db0.close()
            db1.close()

    anyio.run(main)
