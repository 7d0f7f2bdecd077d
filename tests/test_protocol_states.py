"""The connection state machine: every transition in one table, driven through the public API, both backends.

``TRANSITIONS`` in wsframe.protocol.connection is the whole state machine (h11's
rule: one place). Here each allowed transition is made happen the way a user
or a peer would, with the events it must give; every other (state, trigger)
pair is refused; and whichever way a connection ends, ``Closed`` is its last
event, exactly once.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Dict, List, NamedTuple, Tuple

import pytest
from frames_by_hand import raw_frame

from wsframe.protocol import handshake as hs
from wsframe.protocol.connection import (
    TRANSITIONS,
    ClientConnection,
    Connection,
    ServerConnection,
    State,
    Trigger,
)
from wsframe.protocol.errors import InvalidState
from wsframe.protocol.events import (
    Accepted,
    CloseReceived,
    Closed,
    Rejected,
    Request,
)

PEER_KEY = b"\x37\xfa\x21\x3d"
EOF_REASON = "connection closed during the handshake"

CONNECTING, OPEN, CLOSING, CLOSED = State.CONNECTING, State.OPEN, State.CLOSING, State.CLOSED


def test_the_table_is_the_state_machine() -> None:
    """The whole machine, written out: a change here is a change of behaviour, to review."""
    assert TRANSITIONS == {
        (CONNECTING, Trigger.ACCEPTED): OPEN,
        (CONNECTING, Trigger.REFUSED): CLOSED,
        (OPEN, Trigger.CLOSE_SENT): CLOSING,
        (OPEN, Trigger.CLOSE_RECEIVED): CLOSED,
        (OPEN, Trigger.FAILED): CLOSED,
        (OPEN, Trigger.EOF): CLOSED,
        (CLOSING, Trigger.CLOSE_RECEIVED): CLOSED,
        (CLOSING, Trigger.FAILED): CLOSED,
        (CLOSING, Trigger.EOF): CLOSED,
    }
    assert not any(start is CLOSED for start, _ in TRANSITIONS)  # CLOSED is final


# --- getting a connection into each state --------------------------------------------------


def _server(backend: Any) -> ServerConnection:
    return ServerConnection(backend=backend.name)


def _server_with_request(backend: Any) -> ServerConnection:
    conn = _server(backend)
    conn.receive_data(hs.build_request("example.com", "/", key=hs.new_key()))
    assert [type(e) for e in conn.events()] == [Request]
    return conn


def _client(backend: Any) -> ClientConnection:
    return ClientConnection("example.com", "/", backend=backend.name)


def _accept_response(client: ClientConnection) -> bytes:
    reader = hs.HeadReader()
    reader.feed(client.handshake_request())
    return hs.accept(hs.parse_request(reader)).serialize()


def _open(backend: Any) -> Connection:
    return Connection(client=True, backend=backend.name)


def _closing(backend: Any) -> Connection:
    conn = _open(backend)
    conn.close()
    return conn


def _closed(backend: Any) -> Connection:
    conn = _open(backend)
    conn.receive_data(b"")
    list(conn.events())
    return conn


# --- each allowed transition, as it happens --------------------------------------------------


class Case(NamedTuple):
    id: str
    start: State
    trigger: Trigger
    make: Callable[[Any], Any]
    act: Callable[[Any], Any]  # does the trigger; returns nothing of interest
    events: Tuple[Any, ...]  # what events() gives afterwards (type or value)


def _feed(data: bytes) -> Callable[[Any], None]:
    return lambda conn: conn.receive_data(data)


CASES: List[Case] = [
    Case("server-accept", CONNECTING, Trigger.ACCEPTED, _server_with_request, lambda c: c.accept(), ()),
    Case("server-reject", CONNECTING, Trigger.REFUSED, _server_with_request, lambda c: c.reject(403),
         (Closed(1006, "rejected with 403 Forbidden"),)),
    Case("server-invalid-request", CONNECTING, Trigger.REFUSED, _server, _feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
         (Rejected, Closed)),
    Case("server-eof-in-handshake", CONNECTING, Trigger.REFUSED, _server, _feed(b""),
         (Rejected(0, EOF_REASON), Closed(1006, EOF_REASON))),
    Case("client-accepted", CONNECTING, Trigger.ACCEPTED, _client, lambda c: c.receive_data(_accept_response(c)),
         (Accepted,)),
    Case("client-refused", CONNECTING, Trigger.REFUSED, _client, _feed(b"HTTP/1.1 404 Not Found\r\n\r\n"),
         (Rejected(404, "Not Found"), Closed(1006, "Not Found"))),
    Case("client-eof-in-handshake", CONNECTING, Trigger.REFUSED, _client, _feed(b""),
         (Rejected(0, EOF_REASON), Closed(1006, EOF_REASON))),
    Case("open-close-sent", OPEN, Trigger.CLOSE_SENT, _open, lambda c: c.close(1000), ()),
    Case("open-close-received", OPEN, Trigger.CLOSE_RECEIVED, _open, _feed(raw_frame(0x8, b"\x03\xe8bye")),
         (CloseReceived(1000, "bye"), Closed(1000, "bye"))),
    Case("open-failed", OPEN, Trigger.FAILED, _open, _feed(raw_frame(0x3)), (Closed,)),
    Case("open-eof", OPEN, Trigger.EOF, _open, _feed(b""), (Closed(1006, ""),)),
    Case("closing-close-received", CLOSING, Trigger.CLOSE_RECEIVED, _closing, _feed(raw_frame(0x8, b"\x03\xe8")),
         (CloseReceived(1000, ""), Closed(1000, ""))),
    Case("closing-failed", CLOSING, Trigger.FAILED, _closing, _feed(raw_frame(0x9, b"", fin=False)), (Closed,)),
    Case("closing-eof", CLOSING, Trigger.EOF, _closing, _feed(b""), (Closed(1006, ""),)),
]


def _matches(events: List[Any], expected: Tuple[Any, ...]) -> bool:
    if len(events) != len(expected):
        return False
    for event, want in zip(events, expected):
        if isinstance(want, type):
            if type(event) is not want:
                return False
        elif type(event) is not type(want) or event != want:
            return False
    return True


def test_every_allowed_transition_has_a_case() -> None:
    assert {(c.start, c.trigger) for c in CASES} == set(TRANSITIONS)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_transition(case: Case, backend: Any) -> None:
    conn = case.make(backend)
    assert conn.state is case.start
    case.act(conn)
    events = list(conn.events())
    assert conn.state is TRANSITIONS[(case.start, case.trigger)]
    assert _matches(events, case.events), events
    if conn.state is CLOSED:
        closed = events[-1]
        assert isinstance(closed, Closed) and (conn.close_code, conn.close_reason) == (closed.code, closed.reason)
        # Closed is final: more bytes, EOF, or asking again give nothing.
        conn.receive_data(raw_frame(0x1, b"late", key=PEER_KEY))
        conn.receive_data(b"")
        assert list(conn.events()) == []


# --- every other pair is refused ----------------------------------------------------------------

_MAKERS: Dict[State, Callable[[Any], Any]] = {
    CONNECTING: _server_with_request,
    OPEN: _open,
    CLOSING: _closing,
    CLOSED: _closed,
}


@pytest.mark.parametrize(
    "start,trigger",
    [p for p in itertools.product(State, Trigger) if p not in TRANSITIONS],
    ids=lambda v: v.name if isinstance(v, State) else v.value.replace(" ", "-"),
)
def test_illegal_transitions_are_refused(start: State, trigger: Trigger, backend: Any) -> None:
    conn = _MAKERS[start](backend)
    list(conn.events())
    with pytest.raises(InvalidState):
        conn._transition(trigger)
    assert conn.state is start and list(conn.events()) == []


@pytest.mark.parametrize("start", [CONNECTING, CLOSING, CLOSED])
def test_close_outside_open_is_refused(start: State, backend: Any) -> None:
    conn = _MAKERS[start](backend)
    list(conn.events())
    with pytest.raises(InvalidState):
        conn.close()
    assert conn.state is start


@pytest.mark.parametrize("after", ["accept", "close", "eof", "reject"])
def test_accept_and_reject_answer_one_request_once(after: str, backend: Any) -> None:
    conn = _server_with_request(backend)
    if after == "reject":
        conn.reject()
    else:
        conn.accept()
        if after == "close":
            conn.close()
        elif after == "eof":
            conn.receive_data(b"")
            list(conn.events())
    state = conn.state
    for answer in (conn.accept, conn.reject):
        with pytest.raises(InvalidState):
            answer()
    assert conn.state is state


def test_state_is_read_only(backend: Any) -> None:
    conn = _open(backend)
    with pytest.raises(AttributeError):
        conn.state = CLOSED  # type: ignore[misc]
    assert conn.state is OPEN


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_closed_is_last_and_once_whatever_the_way(case: Case, backend: Any) -> None:
    """Drive each case to its end (close or EOF after the transition): one Closed, last."""
    conn = case.make(backend)
    case.act(conn)
    events = list(conn.events())
    if conn.state is not CLOSED:
        conn.receive_data(b"")
        events += conn.events()
    assert conn.state is CLOSED
    assert [type(e) for e in events].count(Closed) == 1 and isinstance(events[-1], Closed)
