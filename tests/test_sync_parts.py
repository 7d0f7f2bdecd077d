"""The blocking driver's parts on their own: Transport over a real socket pair, Timers with a small owner."""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator, List, Tuple

import pytest

from support import wait_for
from wsframe.options import Options
from wsframe.sync import transport as transport_module
from wsframe.sync.maintenance import Maintenance
from wsframe.sync.timers import Timers
from wsframe.sync.transport import Transport


@pytest.fixture
def maint() -> Iterator[Maintenance]:
    m = Maintenance("test-maintenance")
    yield m
    m.stop()


@pytest.fixture(params=["dontwait", "portable"])
def nonblocking(request: pytest.FixtureRequest) -> bool:
    return request.param == "portable"


def make(maint: Maintenance, nonblocking: bool, write_limit: int = 1024) -> Tuple[Transport, socket.socket, List[str]]:
    ours, peer = socket.socketpair()
    for s in (ours, peer):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lost: List[str] = []
    lock = threading.Lock()
    t = Transport(ours, maint, lock, write_limit=write_limit, on_lost=lost.append, on_progress=lambda: None,
                  nonblocking=nonblocking, label="t")
    return t, peer, lost


def drain(peer: socket.socket, want: int, timeout: float = 5.0) -> bytes:
    peer.settimeout(timeout)
    got = bytearray()
    while len(got) < want:
        chunk = peer.recv(65536)
        if not chunk:
            break
        got += chunk
    return bytes(got)


def test_the_socket_mode_is_set_explicitly(maint: Maintenance, nonblocking: bool) -> None:
    ours, peer = socket.socketpair()
    ours.setblocking(nonblocking)  # the opposite of what the transport wants
    t = Transport(ours, maint, threading.Lock(), write_limit=0, on_lost=lambda why: None, on_progress=lambda: None,
                  nonblocking=nonblocking)
    assert ours.getblocking() is (not nonblocking)
    t.release(0.1)
    peer.close()


def test_writes_never_block_and_queue_in_order(maint: Maintenance, nonblocking: bool) -> None:
    t, peer, lost = make(maint, nonblocking)
    payload = bytes(range(256)) * 4096  # 1 MiB: far more than the socket buffers take
    with t._lock:
        started = time.monotonic()
        for i in range(0, len(payload), 65536):
            t.write_locked(payload[i:i + 65536])
        assert time.monotonic() - started < 1.0
        assert t.backlogged and t.buffered > 0 and t.over_limit
    assert drain(peer, len(payload)) == payload  # the maintenance thread flushed the rest, in order
    assert not lost
    peer.close()


def test_a_big_frame_goes_out_after_the_held_ones_in_order(maint: Maintenance, nonblocking: bool) -> None:
    """Held frames and a big payload are gathered into one sendmsg; what the socket does not take
    waits in order, ahead of later writes."""
    t, peer, lost = make(maint, nonblocking)
    payload = bytes(range(256)) * 4096  # 1 MiB
    with t._lock:
        t.hold_locked(b"head-1")
        t.hold_locked(b"head-2")
        t.write_locked(payload)
        assert not t.holding and t.backlogged
        t.write_locked(b"tail")
    expected = b"head-1head-2" + payload + b"tail"
    assert drain(peer, len(expected)) == expected
    assert not lost
    peer.close()


def test_flush_below_waits_for_the_peer_and_times_out(maint: Maintenance, nonblocking: bool) -> None:
    t, peer, _ = make(maint, nonblocking)
    with t._lock:
        t.write_locked(b"x" * 200_000)
        started = time.monotonic()
        assert t.flush_below_locked(1024, 0.3) is False  # nobody reads
        assert 0.25 < time.monotonic() - started < 2.0
    reader = threading.Thread(target=drain, args=(peer, 200_000))
    reader.start()
    with t._lock:
        assert t.flush_below_locked(0, 5.0) is True
        assert t.buffered == 0
    reader.join(5)
    peer.close()


def test_discarding_keeps_the_chunk_in_progress(maint: Maintenance, nonblocking: bool) -> None:
    t, peer, _ = make(maint, nonblocking)
    with t._lock:
        t.write_locked(b"a" * 100_000)
        t.write_locked(b"b" * 100_000)
        t.discard_queued_locked()
        left = t.buffered
    data = drain(peer, 100_000, timeout=2.0)
    assert set(data) == {ord("a")} and len(data) <= 100_000 and left < 100_000
    peer.close()


def test_hold_batches_frames_into_one_write(maint: Maintenance, nonblocking: bool) -> None:
    t, peer, _ = make(maint, nonblocking)
    with t._lock:
        t.hold_locked(b"one")
        t.hold_locked(b"two")
        assert t.holding and t.buffered == 6
        t.write_locked(b"three")
        assert not t.holding
    assert drain(peer, 11) == b"onetwothree"
    peer.close()


def test_abort_wakes_a_blocked_reader_with_eof(maint: Maintenance, nonblocking: bool) -> None:
    t, peer, _ = make(maint, nonblocking)
    result: List[int] = []
    reader = threading.Thread(target=lambda: result.append(t.read(None)))
    reader.start()
    time.sleep(0.2)
    with t._lock:
        t.abort_locked()
    reader.join(5)
    assert result == [0] and t.dead
    peer.close()


def test_over_the_limit_the_reader_stops_reading(maint: Maintenance, nonblocking: bool) -> None:
    t, peer, _ = make(maint, nonblocking)
    peer.sendall(b"input waiting")
    with t._lock:
        t.write_locked(b"x" * 200_000)
        assert t.over_limit
    assert t.read_nowait() == -1  # not even what is there
    assert t.read(time.monotonic() + 0.2) == -1  # returns to the caller, which waits or drops the peer
    peer.close()


def test_close_after_flush_sends_fin_after_the_backlog(maint: Maintenance, nonblocking: bool) -> None:
    t, peer, _ = make(maint, nonblocking)
    with t._lock:
        t.write_locked(b"y" * 100_000)
        t.close_after_flush_locked()
    data = drain(peer, 10**9)  # until EOF
    assert data == b"y" * 100_000
    peer.close()


def test_a_failed_write_reports_the_loss(maint: Maintenance, nonblocking: bool) -> None:
    t, peer, lost = make(maint, nonblocking)
    peer.close()
    with t._lock:
        for _ in range(100):
            t.write_locked(b"z" * 4096)
            if lost:
                break
    assert lost == ["connection lost"]


# -- timers ---------------------------------------------------------------------------------


class Owner:
    """The smallest TimerOwner: records what the timers asked for."""

    id = "owner"

    def __init__(self) -> None:
        self.open = True
        self.ended = False
        self.pings = 0
        self.reads = 0
        self.ends: List[Tuple[int, str, bool]] = []

    def timer_open_locked(self) -> bool:
        return self.open

    def timer_ended_locked(self) -> bool:
        return self.ended

    def timer_ping_locked(self) -> None:
        self.pings += 1

    def timer_read(self) -> None:
        self.reads += 1

    def timer_end_locked(self, code: int, reason: str, fail: bool) -> None:
        self.ends.append((code, reason, fail))
        self.open = False
        self.ended = True


def test_keepalive_pings_a_silent_peer_then_gives_up(maint: Maintenance) -> None:
    owner = Owner()
    lock = threading.Lock()
    timers = Timers(owner, maint, lock, Options(ping_interval=0.1, ping_timeout=0.1))
    with lock:
        timers.opened_locked()
    assert wait_for(lambda: owner.ends)
    assert owner.pings == 1 and owner.reads == 1  # read on the handler's behalf before deciding
    assert owner.ends == [(1011, "keepalive ping timeout", True)]


def test_any_byte_received_counts_as_life(maint: Maintenance) -> None:
    owner = Owner()
    lock = threading.Lock()
    timers = Timers(owner, maint, lock, Options(ping_interval=0.1, ping_timeout=0.1))
    with lock:
        timers.opened_locked()
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        with lock:
            timers.received_locked(1)
        time.sleep(0.02)
    assert owner.pings == 0 and owner.ends == []
    with lock:
        timers.cancel_locked()


def test_the_open_and_close_timers(maint: Maintenance) -> None:
    owner = Owner()
    owner.open = False
    lock = threading.Lock()
    timers = Timers(owner, maint, lock, Options(open_timeout=0.1, close_timeout=0.1))
    with lock:
        timers.start_open_locked()
    assert wait_for(lambda: owner.ends)
    assert owner.ends == [(1006, "opening handshake timed out", False)]

    owner2 = Owner()
    timers2 = Timers(owner2, maint, lock, Options(close_timeout=0.1))
    with lock:
        timers2.opened_locked()
        timers2.start_close_locked()
    assert wait_for(lambda: owner2.ends)
    assert owner2.reads == 1 and owner2.ends == [(1006, "closing handshake timed out", False)]


def test_cancelled_timers_do_nothing(maint: Maintenance) -> None:
    owner = Owner()
    lock = threading.Lock()
    timers = Timers(owner, maint, lock, Options(ping_interval=0.05, ping_timeout=0.05, close_timeout=0.05))
    with lock:
        timers.opened_locked()
        timers.start_close_locked()
        timers.cancel_locked()
    time.sleep(0.3)
    assert owner.pings == 0 and owner.ends == [] and owner.reads == 0


def test_the_module_knows_msg_dontwait() -> None:
    assert transport_module.MSG_DONTWAIT == getattr(socket, "MSG_DONTWAIT", 0)
