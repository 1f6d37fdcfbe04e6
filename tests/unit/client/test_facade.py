"""The blocking client as a facade over the async one (tests/unit/client/fake_ctdbd.py):
its portal thread's life, use from several threads, and the async client itself."""

from __future__ import annotations

import asyncio
import gc
import signal
import struct
import threading
import time

import pytest

from ctdbcore.client import Client, ConnectionClosed, ControlError, ControlTimeout
from ctdbcore.client.aio import AsyncClient
from ctdbcore.client.inbox import CLOSED, EXPIRED, Inbox
from ctdbcore.client.portal import Portal
from ctdbcore.protocol import packets
from ctdbcore.protocol.constants import Opcode, Srvid


def _portal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ctdb-client"]


def test_close_releases_the_portal_thread(fake):
    before = len(_portal_threads())
    c = Client(fake.path)
    thread = c.portal.thread
    assert thread.is_alive() and len(_portal_threads()) == before + 1
    c.close()
    assert not thread.is_alive() and len(_portal_threads()) == before
    c.close()  # idempotent
    fake.wait_idle()  # the daemon saw the connection end


def test_a_client_nobody_closed_is_released_when_collected(fake):
    c = Client(fake.path)
    thread = c.portal.thread
    del c
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()
    fake.wait_idle()


def test_a_closed_client_raises_connection_closed(fake):
    c = Client(fake.path)
    c.close()
    with pytest.raises(ConnectionClosed):
        c.get_pnn()
    with pytest.raises(ConnectionClosed):
        c.wait_message(Srvid.LEADER, 0)


def test_the_daemon_going_away_is_connection_closed(fake):
    with Client(fake.path) as c:
        srvid = Srvid.TEST_RANGE | 3
        c.register_srvid(srvid)
        fake.close()
        with pytest.raises(ConnectionClosed):
            c.wait_message(srvid, 5)
        with pytest.raises(ConnectionClosed):
            c.get_pnn()


def test_one_client_serves_many_threads_at_once(fake):
    """Controls from several threads share the connection; a thread waiting for a
    message does not hold up the others (the old blocking client could do neither)."""
    srvid = Srvid.TEST_RANGE | 9
    errors: list[BaseException] = []
    with Client(fake.path) as c:
        c.register_srvid(srvid)
        waiter_got: list[bytes | None] = []
        waiter = threading.Thread(target=lambda: waiter_got.append(c.wait_message(srvid, 10)))
        waiter.start()

        def worker() -> None:
            try:
                for _ in range(30):
                    assert c.get_pnn() == 0
                    assert c.get_recmode() == 0
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        workers = [threading.Thread(target=worker) for _ in range(6)]
        t0 = time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join(20)
        assert time.monotonic() - t0 < 10 and not errors
        assert waiter.is_alive()  # still waiting, and nobody waited for it
        c.send_message(0, srvid, b"wake")
        waiter.join(5)
        assert waiter_got == [b"wake"]
    reqids = [p.reqid for p in fake.received if isinstance(p, packets.ReqControl)]
    assert len(reqids) == len(set(reqids))


def test_wait_message_for_a_srvid_not_registered_returns_at_once(fake):
    with Client(fake.path) as c:
        t0 = time.monotonic()
        assert c.wait_message(Srvid.TEST_RANGE | 5, 5) is None
        assert time.monotonic() - t0 < 1


def test_control_multi_and_its_timeouts(fake):
    fake.hooks[Opcode.GET_RECMODE] = lambda req: time.sleep(0.3) or (0, b"")
    with Client(fake.path) as c:
        replies = c.control_multi([(0, Opcode.GET_PNN, b""), (1, Opcode.GET_PNN, b""),
                                   (0, Opcode.GET_RECMODE, b"")], timeout=0.1)
        # The fake answers one connection in order, so the slow one holds up nothing
        # that was sent before it.
        assert [r.status if r else None for r in replies] == [0, 1, None]


def test_portal_call_interrupted_cancels_the_call():
    """KeyboardInterrupt (here: a signal handler's exception) in the waiting thread
    cancels the coroutine in the loop."""
    p = Portal()
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        raise Interrupted

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(Interrupted):
            p.call(forever)
        assert cancelled.wait(5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        p.close()
    assert not p.thread.is_alive()


def test_portal_close_cancels_what_still_runs():
    p = Portal()
    started, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    threading.Thread(target=lambda: pytest.raises(BaseException, p.call, forever), daemon=True).start()
    assert started.wait(5)
    p.close()
    assert cancelled.is_set() and not p.thread.is_alive()
    with pytest.raises(RuntimeError):
        p.call(forever)


# -- the async client itself ----------------------------------------------------------------


def test_async_client_conversation(fake):
    srvid = Srvid.TEST_RANGE | 11

    async def main() -> None:
        async with await AsyncClient.connect(fake.path, timeout=0.2) as c:
            assert c.pnn == 0
            results = await asyncio.gather(*(c.get_pnn(destnode=p) for p in (0, 1, 2)))
            assert results == [0, 1, 2]
            with pytest.raises(ControlError):
                await c.get_tunable("NoSuchTunable")
            fake.hooks[Opcode.GET_RECMODE] = lambda req: time.sleep(0.5) or (0, b"")
            with pytest.raises(ControlTimeout):
                await c.get_recmode()
            c.timeout = 5.0  # the fake answers in order: the next reply waits for that one
            await c.register_srvid(srvid)
            await c.send_message(0, srvid, b"one")
            assert await c.receive(srvid, timeout=2) == b"one"
            assert await c.receive(srvid, timeout=0.05) is None
            await c.deregister_srvid(srvid)
            assert not c.registered(srvid)
            assert await c.get_leader(1.0) == 0

    asyncio.run(main())


def test_async_client_wait_is_cancelled_by_its_task(fake):
    async def main() -> None:
        async with await AsyncClient.connect(fake.path) as c:
            srvid = Srvid.TEST_RANGE | 12
            await c.register_srvid(srvid)
            task = asyncio.ensure_future(c.receive(srvid, timeout=None))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Nothing was lost on the way: the next message still arrives.
            await c.send_message(0, srvid, b"after")
            assert await c.receive(srvid, timeout=2) == b"after"

    asyncio.run(main())


def test_inbox_keeps_order_limit_and_end():
    async def main() -> None:
        box = Inbox(limit=2)
        box.put(b"a")
        box.put(b"b")
        box.put(b"dropped")
        assert await box.get(0) == b"a"
        assert box.take_all() == [b"b"]
        assert await box.get(0.01) is EXPIRED
        getter = asyncio.ensure_future(box.get(5))
        await asyncio.sleep(0)
        box.put(b"c")
        assert await getter == b"c"
        box.put(b"d")
        box.close()
        assert await box.get(1) == b"d"  # what came before the end is still read
        assert await box.get(1) is CLOSED

    asyncio.run(main())


def test_leader_broadcast_queued_before_the_call_counts(fake):
    fake.state.leader = None
    with Client(fake.path) as c:
        c.register_srvid(Srvid.LEADER)
        fake.message(Srvid.LEADER, struct.pack("<I", 2))
        time.sleep(0.1)  # taken in by the portal's reader meanwhile
        assert c.get_leader(0.05) == 2
