"""A node's public-address bookkeeping without a network: holder records, the
"redundant release", interface choice and references, the wire views."""

from __future__ import annotations

import ipaddress

import anyio
import pytest

from ctdbcore.config.public_addresses import parse_public_addresses_text
from ctdbcore.daemon.publicips import NO_ACTIVE, UNASSIGNED, PublicIPs
from ctdbcore.protocol.constants import PUBLIC_IP_FLAGS_ONLY_AVAILABLE, Srvid


class FakeDaemon:
    pnn = 1
    events = None

    def __init__(self) -> None:
        self.messages: list[tuple[int, int, bytes]] = []

    def send_message(self, dest, srvid, data) -> None:
        self.messages.append((dest, srvid, data))

    def spawn(self, fn, *args) -> None:  # announcements need a network: not here
        pass


def make(text: str) -> tuple[FakeDaemon, PublicIPs]:
    d = FakeDaemon()
    d.tickles = type("NoTickles", (), {"announce": staticmethod(lambda ip, iface: None)})()
    return d, PublicIPs(d, parse_public_addresses_text(text, "pa"))


def run(coro_fn, *args):
    return anyio.run(coro_fn, *args)


def test_lists_newest_first_and_only_available() -> None:
    d, pips = make("198.51.100.1/24 nosuch0\n198.51.100.2/24 nosuch1\n")
    ips = [str(p.addr.ip) for p in pips.public_ip_list(0).ips]
    assert ips == ["198.51.100.2", "198.51.100.1"]  # 4.17 prepends
    assert all(p.pnn == UNASSIGNED for p in pips.public_ip_list(0).ips)
    pips.set_link("nosuch1", False)
    avail = [str(p.addr.ip) for p in pips.public_ip_list(PUBLIC_IP_FLAGS_ONLY_AVAILABLE).ips]
    assert avail == ["198.51.100.1"]


def test_take_release_and_redundant_release() -> None:
    d, pips = make("198.51.100.1/24 nosuch0,nosuch1\n")
    ip = ipaddress.ip_address("198.51.100.1")
    assert run(pips.takeover, 1, ip) == (0, "")
    v = pips.find(ip)
    assert v.pnn == 1 and v.active_iface == "nosuch0"
    info = pips.ip_info(ip)
    assert info.active_idx == 0 and [i.references for i in info.ifaces] == [1, 0]
    # another node takes it: we release (we still held it) and record the new holder
    assert run(pips.takeover, 2, ip) == (0, "")
    assert v.pnn == 2 and v.active_iface is None
    # local clients (smbd) heard about both moves, as NUL-terminated address strings
    assert [(dest, srvid, data) for dest, srvid, data in d.messages] == [
        (1, Srvid.TAKE_IP, b"198.51.100.1\0"), (1, Srvid.RELEASE_IP, b"198.51.100.1\0")]
    assert pips.ip_info(ip).active_idx == NO_ACTIVE
    # a release naming a third node is only bookkeeping here
    assert run(pips.release, 0, ip) == (0, "")
    assert v.pnn == 0


def test_takeover_picks_a_link_up_interface_and_fails_without_one() -> None:
    d, pips = make("198.51.100.1/24 nosuch0,nosuch1\n")
    ip = ipaddress.ip_address("198.51.100.1")
    pips.set_link("nosuch0", False)
    assert run(pips.takeover, 1, ip) == (0, "")
    assert pips.find(ip).active_iface == "nosuch1"
    d2, pips2 = make("198.51.100.1/24 nosuch0\n")
    pips2.set_link("nosuch0", False)
    status, why = run(pips2.takeover, 1, ip)
    assert status == -1 and "no interface" in why


def test_unknown_address() -> None:
    d, pips = make("198.51.100.1/24 nosuch0\n")
    # 4.17 answers 0 to a take of an address it does not list (see the next test)
    assert run(pips.takeover, 1, ipaddress.ip_address("203.0.113.9")) == (0, "")
    assert run(pips.release, 1, ipaddress.ip_address("203.0.113.9")) == (0, "")
    assert pips.ip_info("203.0.113.9") is None
    with pytest.raises(ValueError):
        pips.find("not-an-ip")


def test_takeover_of_an_address_not_in_the_pool_changes_nothing_and_is_not_an_error(caplog) -> None:
    """4.17: TAKEOVER_IP for an address this node does not list answers 0 (a delip can
    race a takeover run; failing would fail the run and earn the node ban credits)."""
    d, pips = make("198.51.100.1/24 nosuch0\n")
    assert run(pips.takeover, 1, ipaddress.ip_address("198.51.100.9")) == (0, "")
    assert [str(v.ip) for v in pips.vnns] == ["198.51.100.1"] and pips.held_here() == []
    assert d.messages == []
    assert "Not taking over IP 198.51.100.9: it is not in this node's public addresses" in caplog.text


def test_a_release_while_the_same_release_runs_waits_for_it_and_is_redundant() -> None:
    """A stopping node releases everything while the leader's RELEASE_IP for the same
    address arrives: one releaseip event, and both calls succeed."""
    d, pips = make("198.51.100.1/24 nosuch0\n")
    ip = ipaddress.ip_address("198.51.100.1")
    v = pips.find(ip)
    v.pnn, v.active_iface = d.pnn, "nosuch0"
    calls: list[str] = []

    class SlowEvents:
        async def run(self, event, **args) -> bool:
            calls.append(event)
            await anyio.sleep(0.05)
            return True

    d.events = SlowEvents()
    results = []

    async def both() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: _collect(results, pips.release(UNASSIGNED, ip)))
            await anyio.sleep(0.01)
            tg.start_soon(lambda: _collect(results, pips.release(UNASSIGNED, ip)))

    anyio.run(both)
    assert calls == ["releaseip"] and results == [(0, ""), (0, "")]
    assert v.pnn == UNASSIGNED and v.active_iface is None


async def _collect(out, coro) -> None:
    out.append(await coro)


@pytest.mark.parametrize("hosted", [True, False])
def test_a_failed_releaseip_event_fails_the_release_only_while_the_address_is_hosted(monkeypatch, hosted) -> None:
    """4.17's release_ip_callback: a service plugin's failed releaseip does not keep an
    address that 10.interface already removed "held" here (every retry would fail)."""
    import ctdbcore.netif.addresses as A

    d, pips = make("198.51.100.1/24 nosuch0\n")
    ip = ipaddress.ip_address("198.51.100.1")
    v = pips.find(ip)
    v.pnn, v.active_iface = d.pnn, "nosuch0"

    class FailingEvents:
        ctx = type("Ctx", (), {"test_mode": False})()

        async def run(self, event, **args) -> bool:
            return False

    d.events = FailingEvents()
    monkeypatch.setattr(A, "has_ip", lambda addr: "nosuch0" if hosted else None)
    code, msg = run(pips.release, 2, ip)
    if hosted:
        assert code == -1 and "still hosted" in msg and v.active_iface == "nosuch0"
    else:
        assert (code, msg) == (0, "") and v.pnn == 2 and v.active_iface is None
