"""TCP's connection states and every change between them, as one table.

The states are RFC 9293's (section 3.3.2) under Linux's names (``include/net/tcp_states.h``,
as ``ss`` and ``/proc/net/tcp`` print them): the strings are what traces record and what the
kernel compares, so they stay plain strings. :data:`TRANSITIONS` maps ``(state, event)`` to
the next state, as h11's ``_state.py`` does for HTTP; a connection changes state only through
:func:`transition`, and a pair missing from the table is a bug in the caller
(:class:`TcpStateError`), not a protocol error of the peer.

Events are named for what happened, in RFC 9293's words where it has them:

========================  ========================================================================
``connect``               the application's active open (tcp_v4_connect): the SYN goes out
``listen``                the application's passive open (inet_listen)
``rcv_syn``               a SYN: for a listener, a new connection (tcp_conn_request); in TIME_WAIT,
                          a new incarnation above rcv_nxt (tcp_timewait_state_process: TCP_TW_SYN)
``rcv_synack``            the SYN-ACK that completes an active open (tcp_rcv_synsent_state_process)
``rcv_ack``               the ACK that completes a passive open (tcp_check_req)
``close``                 close() or shutdown(SHUT_WR): a FIN is queued (tcp_close_state)
``rcv_fin``               the peer's FIN, in sequence (tcp_fin)
``rcv_ack_of_fin``        an ACK that covers our FIN (tcp_rcv_state_process)
``rcv_rst``               an acceptable RST (tcp_reset)
``icmp_error``            an ICMP destination-unreachable for our SYN (tcp_v4_err)
``timeout``               retransmissions, probes or keepalives gave up (tcp_write_err)
``abort``                 the connection is dropped at once: close() with unread data or
                          SO_LINGER 0, shutdown() or close() in SYN_SENT, data for a closed
                          reader, a listener closing with requests pending (tcp_done)
``close_timer``           TIME_WAIT's 60 s, or an orphan's tcp_fin_timeout in FIN_WAIT2, ran out
========================  ========================================================================

Not modelled, so not in the table: simultaneous open (SYN_SENT + SYN -> SYN_RECV) and
simultaneous close from FIN_WAIT1 on a FIN that also acknowledges ours in one step (the ACK
is processed first, FIN_WAIT1 -> FIN_WAIT2 -> TIME_WAIT, as Linux does).

``python -m simsock.tcp.states`` prints the table as a mermaid state diagram
(docs/tcp-states.md is its output).
"""

from __future__ import annotations

CLOSE = "CLOSE"
LISTEN = "LISTEN"
SYN_SENT = "SYN_SENT"
SYN_RECV = "SYN_RECV"
ESTABLISHED = "ESTABLISHED"
FIN_WAIT1 = "FIN_WAIT1"
FIN_WAIT2 = "FIN_WAIT2"
CLOSE_WAIT = "CLOSE_WAIT"
CLOSING = "CLOSING"
LAST_ACK = "LAST_ACK"
TIME_WAIT = "TIME_WAIT"

#: Every state, in tcp_states.h order.
STATES = (ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT,
          LAST_ACK, LISTEN, CLOSING)

CONNECT = "connect"
LISTEN_CALL = "listen"
RCV_SYN = "rcv_syn"
RCV_SYNACK = "rcv_synack"
RCV_ACK = "rcv_ack"
CLOSE_CALL = "close"
RCV_FIN = "rcv_fin"
RCV_ACK_OF_FIN = "rcv_ack_of_fin"
RCV_RST = "rcv_rst"
ICMP_ERROR = "icmp_error"
TIMEOUT = "timeout"
ABORT = "abort"
CLOSE_TIMER = "close_timer"

#: sk_shutdown bits (include/net/sock.h): which directions are shut.
RCV_SHUTDOWN, SEND_SHUTDOWN = 1, 2

_SYNCHRONIZED = (ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, CLOSING, LAST_ACK)

TRANSITIONS: dict[tuple[str, str], str] = {
    # opening
    (CLOSE, CONNECT): SYN_SENT,
    (CLOSE, LISTEN_CALL): LISTEN,
    (CLOSE, RCV_SYN): SYN_RECV,           # the listener's new connection (it stays LISTEN)
    (SYN_SENT, RCV_SYNACK): ESTABLISHED,
    (SYN_RECV, RCV_ACK): ESTABLISHED,
    # closing: our FIN first
    (ESTABLISHED, CLOSE_CALL): FIN_WAIT1,
    (SYN_RECV, CLOSE_CALL): FIN_WAIT1,
    (FIN_WAIT1, RCV_ACK_OF_FIN): FIN_WAIT2,
    (FIN_WAIT1, RCV_FIN): CLOSING,
    (FIN_WAIT2, RCV_FIN): TIME_WAIT,
    (CLOSING, RCV_ACK_OF_FIN): TIME_WAIT,
    # closing: the peer's FIN first
    (ESTABLISHED, RCV_FIN): CLOSE_WAIT,
    (SYN_RECV, RCV_FIN): CLOSE_WAIT,
    (CLOSE_WAIT, CLOSE_CALL): LAST_ACK,
    (LAST_ACK, RCV_ACK_OF_FIN): CLOSE,
    # the end of TIME_WAIT and of an orphan's FIN_WAIT2
    (TIME_WAIT, CLOSE_TIMER): CLOSE,
    (FIN_WAIT2, CLOSE_TIMER): CLOSE,
    (TIME_WAIT, RCV_SYN): CLOSE,
    (LISTEN, CLOSE_CALL): CLOSE,
    (SYN_SENT, ICMP_ERROR): CLOSE,
    # tcp_done from wherever the connection is
    **{(s, RCV_RST): CLOSE for s in (SYN_SENT, SYN_RECV, TIME_WAIT) + _SYNCHRONIZED},
    **{(s, TIMEOUT): CLOSE for s in (SYN_SENT, SYN_RECV) + _SYNCHRONIZED},
    **{(s, ABORT): CLOSE for s in (SYN_SENT, SYN_RECV, TIME_WAIT) + _SYNCHRONIZED},
    (CLOSE, ABORT): CLOSE,                # abort() on a socket that never connected
}


class TcpStateError(RuntimeError):
    """A state change the table does not have: an internal error, never the peer's fault."""


def transition(state: str, event: str) -> str:
    """The state after ``event`` in ``state`` (raises :class:`TcpStateError` if illegal)."""
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise TcpStateError(f"no TCP transition from {state} on {event}") from None


def mermaid() -> str:
    """The table as a mermaid ``stateDiagram-v2``; one arrow per pair of states, labelled
    with its events."""
    edges: dict[tuple[str, str], list[str]] = {}
    for (old, event), new in TRANSITIONS.items():
        edges.setdefault((old, new), []).append(event)
    lines = ["stateDiagram-v2", f"    [*] --> {CLOSE}"]
    lines += [f"    {old} --> {new}: {', '.join(events)}" for (old, new), events in edges.items()]
    return "\n".join(lines)


def document() -> str:
    """docs/tcp-states.md: the diagram and the table."""
    rows = "\n".join(f"| {old} | {event} | {new} |"
                     for (old, event), new in TRANSITIONS.items())
    return f"""# TCP connection states

Generated by `python -m simsock.tcp.states > docs/tcp-states.md` from the table in
`simsock/tcp/states.py` (its docstring says what each event is); do not edit by hand.

```mermaid
{mermaid()}
```

| state | event | next state |
|---|---|---|
{rows}
"""


if __name__ == "__main__":
    print(document(), end="")
