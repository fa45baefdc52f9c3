"""Links: point-to-point, full duplex, each direction a :class:`Channel`.

A channel serialises packets at its rate, one after another, adds the propagation delay and
drops a packet with the loss model's probability (from the channel's own named random
stream). Its transmit queue is finite: a packet that finds it full is dropped
("queue_full"), as an interface's pfifo queue drops at txqueuelen.

Speed: for a plain FIFO drop-tail queue every decision is known when the packet is queued
(its transmission starts when the one before it ends), so the channel computes departure
and arrival at once and schedules exactly one SimPy event per packet, its arrival
(DESIGN.md, "Speed"). A queue discipline that decides at dequeue time (RED, CoDel, or any
user qdisc with ``fifo_drop_tail = False``) switches the channel to event-driven mode: one
event when each transmission ends, plus the arrival.
"""

from __future__ import annotations

from collections import deque
from heapq import heappush as _heappush

from simpy.events import NORMAL, Event as _Event

from simsock.kernel.events import call_later
from simsock.units import NS_PER_S

_new_event = object.__new__


def serialisation_ns(size_bytes: int, rate_bps: int) -> int:
    """Time to put ``size_bytes`` on a wire of ``rate_bps`` (rounded up to whole ns)."""
    return -((-size_bytes * 8 * NS_PER_S) // rate_bps)


class Channel:
    """One direction of a link: transmit queue + wire."""

    def __init__(self, sim, name: str, src, dst, rate_bps: int | None, delay_ns: int, mtu: int,
                 queue_packets: int, loss=None, qdisc=None, jitter=None):
        self.sim = sim
        self.env = sim.env
        self.name = name
        self.src = src
        self.dst = dst
        self.rate_bps = rate_bps          # None = infinitely fast (loopback)
        self.delay_ns = delay_ns
        self.mtu = mtu
        self.queue_packets = queue_packets
        self.loss = loss
        self.jitter = jitter
        self.rng = sim.rng.stream(f"link:{name}") if (loss is not None or jitter is not None) else None
        if qdisc is not None and getattr(qdisc, "on_drop", None) is not None:
            raise ValueError(f"the qdisc for {name} is already in use on another port: each port needs its "
                             f"own, so a qdisc factory must return a new one on each call, e.g. "
                             f"qdisc=lambda: {type(qdisc).__name__}(...)")
        self.qdisc = qdisc
        self.eager = qdisc is None or getattr(qdisc, "fifo_drop_tail", False)
        # An eager FIFO with a qdisc (DropTail) keeps that qdisc's limits: packets and/or bytes.
        self.queue_bytes_limit = None
        if qdisc is not None and self.eager:
            limit = getattr(qdisc, "limit_packets", None)
            self.queue_packets = limit if limit is not None else 1 << 62
            self.queue_bytes_limit = getattr(qdisc, "limit_bytes", None)
        if qdisc is not None:
            qdisc.on_drop = self._qdisc_dropped
            qdisc.attach(sim.rng.stream(f"qdisc:{name}"), rate_bps or 0)
        # eager FIFO state: start times of packets still waiting (not yet on the wire)
        self._busy_until = 0
        self._waiting: deque = deque()       # (start_ns, size)
        self._waiting_bytes = 0
        self._last_arrival = 0
        # event-driven state
        self._transmitting = False
        # counters
        self.tx_packets = 0
        self.tx_bytes = 0
        self.busy_ns = 0
        self.drops_queue = 0
        self.drops_loss = 0
        self.drops_other = 0
        self.in_flight = 0
        self.offered = 0                      # packets handed to send() (not loopback)
        # optional ChannelMonitor (simsock.net.monitor): called (now, packets, bytes) at every
        # queue change, .offer(now, pkt) for every packet handed to send(),
        # .transmit(start, end, size) for every transmission, .arrived(now) at every arrival
        self.monitor = None
        self._mon_bins = None                 # the monitor's offered_bins() while monitored
        mon = sim.monitors
        if mon is not None and rate_bps is not None:
            mon.attach(self)

    # ------------------------------------------------------------------------------------
    def queued_packets(self, now: int | None = None) -> int:
        """Packets waiting in the transmit queue (not counting the one on the wire)."""
        if not self.eager:
            return len(self.qdisc)
        self._expire(self.env.now if now is None else now)
        return len(self._waiting)

    def queued_bytes(self) -> int:
        if not self.eager:
            return self.qdisc.bytes
        self._expire(self.env.now)
        return self._waiting_bytes

    def _expire(self, now: int) -> None:
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            start, size = waiting.popleft()
            self._waiting_bytes -= size
            if self.monitor is not None:
                self.monitor(start, len(waiting), self._waiting_bytes)

    def send(self, pkt) -> int | None:
        """Queue ``pkt`` for transmission. Returns the time its transmission ends (the
        sender's buffer is released then), or None if the queue dropped it."""
        env = self.env
        now = env._now
        sim = self.sim
        trace = sim.trace
        if self.rate_bps is None:                       # loopback: no queue, no wire time
            return self._send_loopback(pkt, now)
        self.offered += 1
        if self.monitor is not None:          # the monitor's per-bin offered counts, in place
            bin_ns, packets, nbytes, _ = self._mon_bins
            i = now // bin_ns
            if i < len(packets):
                packets[i] += 1
                nbytes[i] += pkt.size
            else:
                self.monitor.offer(now, pkt.size)
        if not self.eager:
            return self._enqueue(pkt, now)
        # eager FIFO drop-tail
        waiting = self._waiting
        if waiting and waiting[0][0] <= now:
            self._expire(now)
        if len(waiting) >= self.queue_packets or (
                self.queue_bytes_limit is not None and self._waiting_bytes + pkt.size > self.queue_bytes_limit):
            self.drops_queue += 1
            sim._packet_dropped(self, pkt, "queue_full")
            return None
        start = self._busy_until if self._busy_until > now else now
        tx = -((-pkt.size * 8 * NS_PER_S) // self.rate_bps)       # serialisation_ns, inlined
        end = start + tx
        self._busy_until = end
        self.busy_ns += tx
        self.tx_packets += 1
        self.tx_bytes += pkt.size
        pkt.enqueued_at = now
        mon = self.monitor
        if start > now:
            waiting.append((start, pkt.size))
            self._waiting_bytes += pkt.size
            if mon is not None:
                mon(now, len(waiting), self._waiting_bytes)
        if mon is not None:
            mon.transmit(start, end, pkt.size)
        if trace.want_packets:
            trace.packet(now, self.name, "enqueue", pkt)
        if self.loss is not None and self._lost():
            self.drops_loss += 1
            sim._packet_dropped(self, pkt, "loss")
            return end
        if self.jitter is not None:
            self._schedule_arrival(pkt, end + self.delay_ns)
            return end
        # self._schedule_arrival(pkt, end + self.delay_ns) without jitter, inlined (buys
        # benchmarks/compare.py udp and tcp_bulk.py: one per packet)
        ev = _new_event(_Event)
        ev.env = env
        ev.callbacks = [self._arrive]
        ev._ok = True
        ev._value = pkt
        self.in_flight += 1
        sim.in_flight += 1
        _heappush(env._queue, (end + self.delay_ns, NORMAL, next(env._eid), ev))
        return end

    def _send_loopback(self, pkt, now: int) -> int:
        """``send`` on a loopback channel: no queue, no wire time."""
        trace = self.sim.trace
        self.tx_packets += 1
        self.tx_bytes += pkt.size
        if trace.want_packets:
            trace.packet(now, self.name, "enqueue", pkt)
        if not self.delay_ns:
            # Linux processes a loopback packet (and the ICMP error it may cause)
            # before the sending syscall returns: loopback_xmit -> netif_rx, run by the
            # softirq on the way out. A TCP segment goes through the host's TCP backlog
            # (TcpStack.loopback_input), so that a connection is never re-entered from
            # inside its own output: a whole loopback handshake completes inside connect().
            if pkt.proto == 6 and getattr(self.dst, "tcp", None) is not None:
                self.dst.tcp.loopback_input(pkt, self)
                return now
            if trace.want_packets:
                trace.packet(now, self.name, "arrive", pkt)
            self.dst.receive(pkt, self)
            return now
        self._schedule_arrival(pkt, now + self.delay_ns)
        return now

    def _enqueue(self, pkt, now: int) -> int | None:
        """``send`` for a queue discipline that decides at dequeue time (event-driven mode)."""
        pkt.enqueued_at = now
        qdisc = self.qdisc
        if not qdisc.enqueue(pkt, now):
            return None
        trace = self.sim.trace
        if trace.want_packets:
            trace.packet(now, self.name, "enqueue", pkt)
        if self.monitor is not None:
            self.monitor(now, len(qdisc), qdisc.bytes)
        if not self._transmitting:
            self._start_next(now)
        return self._estimate_tx_end(now)

    def _estimate_tx_end(self, now: int) -> int:
        # Event-driven queues decide at dequeue; the sender's memory is released at the
        # estimated end assuming FIFO service of what is queued now. A shaper (TBF) knows
        # when its tokens let the backlog out.
        estimate = getattr(self.qdisc, "departure_estimate", None)
        if estimate is not None:
            return max(estimate(now), now, self._busy_until)
        backlog = self.qdisc.bytes
        return max(now, self._busy_until) + serialisation_ns(backlog, self.rate_bps)

    def _lost(self) -> bool:
        loss = self.loss
        if isinstance(loss, float):
            return self.rng.random() < loss
        return loss.lose(self.rng)

    def _schedule_arrival(self, pkt, at: int) -> None:
        if self.jitter is not None:
            at += self.jitter.delay(self.rng, at, self._last_arrival)
            if at < self._last_arrival and not getattr(self.jitter, "reorder", False):
                at = self._last_arrival
            self._last_arrival = at
        env = self.env
        # call_later(env, at - now, self._arrive, pkt), inlined: one per packet (buys
        # benchmarks/udp_blast.py and tcp_bulk.py)
        ev = _new_event(_Event)
        ev.env = env
        ev.callbacks = [self._arrive]
        ev._ok = True
        ev._value = pkt
        self.in_flight += 1
        self.sim.in_flight += 1
        _heappush(env._queue, (at, NORMAL, next(env._eid), ev))

    def _arrive(self, ev) -> None:
        pkt = ev._value
        self.in_flight -= 1
        sim = self.sim
        sim.in_flight -= 1
        if sim.trace.want_packets:
            sim.trace.packet(self.env._now, self.name, "arrive", pkt)
        if self.monitor is not None:          # the monitor's per-bin arrivals, in place
            now = self.env._now
            i = now // self._mon_bins[0]
            arrived = self._mon_bins[3]
            if i < len(arrived):
                arrived[i] += 1
            else:
                self.monitor.arrived(now)
        self.dst.receive(pkt, self)
        if sim.in_flight == 0:
            sim._network_quiet()

    # -- event-driven mode ---------------------------------------------------------------
    def _start_next(self, now: int) -> None:
        qdisc = self.qdisc
        pkt = qdisc.dequeue(now)
        mon = self.monitor
        if mon is not None:
            mon(now, len(qdisc), qdisc.bytes)
        if pkt is None:
            # A shaper holding packets it may not send yet (TBF without tokens) names the
            # time it may (qdisc_watchdog_schedule_ns): try again then. Arrivals meanwhile
            # cannot go first (FIFO), so the channel stays "transmitting" until the watchdog.
            at = getattr(qdisc, "watchdog_ns", None)
            if at is not None and len(qdisc):
                call_later(self.env, max(at - now, 0), self._watchdog)
                self._transmitting = True
                return
            self._transmitting = False
            return
        self._transmitting = True
        tx = serialisation_ns(pkt.size, self.rate_bps)
        self._busy_until = now + tx
        self.busy_ns += tx
        self.tx_packets += 1
        self.tx_bytes += pkt.size
        if mon is not None:
            mon.transmit(now, now + tx, pkt.size)
        call_later(self.env, tx, self._tx_done, pkt)

    def _watchdog(self, ev) -> None:
        self._start_next(self.env.now)

    def _tx_done(self, ev) -> None:
        pkt = ev._value
        now = self.env.now
        if self.loss is not None and self._lost():
            self.drops_loss += 1
            self.sim._packet_dropped(self, pkt, "loss")
        else:
            self._schedule_arrival(pkt, now + self.delay_ns)
        self._start_next(now)

    def _qdisc_dropped(self, pkt, reason: str, now: int) -> None:
        self.drops_queue += 1
        self.sim._packet_dropped(self, pkt, reason)

    def stats(self) -> dict:
        now = self.env.now
        util = (min(self.busy_ns, now) / now) if (now and self.rate_bps) else 0.0
        return {
            "tx_packets": self.tx_packets, "tx_bytes": self.tx_bytes,
            "drops_queue": self.drops_queue, "drops_loss": self.drops_loss,
            "queued_packets": self.queued_packets(), "utilisation": round(util, 6),
        }

    def sent_packets(self) -> int:
        """Packets whose transmission has started by now (the FIFO fast path counts a packet
        in ``tx_packets`` when it is queued, so the ones still waiting are taken off)."""
        if self.eager:
            return self.tx_packets - self.queued_packets()
        return self.tx_packets

    def port_stats(self) -> dict:
        """A router port's counters. At every instant ``offered == sent + dropped + queued``
        (``dropped``: refused or discarded by the queue; losses on the wire come after
        ``sent``)."""
        queued = self.queued_packets()
        s = {
            "offered": self.offered, "sent": self.sent_packets(), "dropped": self.drops_queue,
            "queued": queued, "queued_bytes": self.queued_bytes(), "tx_bytes": self.tx_bytes,
            "lost": self.drops_loss,
        }
        if self.qdisc is not None and not self.eager:
            s["qdisc"] = self.qdisc.stats()
        elif self.qdisc is not None:
            s["qdisc"] = {"kind": type(self.qdisc).__name__, "limit_packets": getattr(self.qdisc, "limit_packets", None),
                          "limit_bytes": getattr(self.qdisc, "limit_bytes", None)}
        return s


class Link:
    """A full-duplex point-to-point link between two nodes: ``forward`` carries a->b."""

    def __init__(self, sim, a, b, rate_bps, delay_ns, loss, mtu, queue_packets, qdisc_factory=None, jitter=None):
        """Each of ``rate_bps``, ``delay_ns``, ``loss``, ``queue_packets``, ``qdisc_factory``
        and ``jitter`` may be a pair (a->b, b->a) when the two directions differ (a router's
        own queue settings apply to its output ports; ``add_link(ab=, ba=)``). ``rate_bps``
        and ``delay_ns`` of the link are then the pair's (routing uses the mean delay)."""
        def pair(v):
            return v if isinstance(v, tuple) else (v, v)
        q_fwd, q_back = pair(queue_packets)
        f_fwd, f_back = pair(qdisc_factory)
        r_fwd, r_back = pair(rate_bps)
        d_fwd, d_back = pair(delay_ns)
        l_fwd, l_back = pair(loss)
        j_fwd, j_back = pair(jitter)
        self.sim = sim
        self.a = a
        self.b = b
        self.name = f"{a.name}-{b.name}"
        self.rate_bps = r_fwd if r_fwd == r_back else (r_fwd, r_back)
        self.delay_ns = d_fwd if d_fwd == d_back else (d_fwd + d_back) // 2
        self.mtu = mtu
        self.forward = Channel(sim, f"{a.name}->{b.name}", a, b, r_fwd, d_fwd, mtu, q_fwd, l_fwd,
                               f_fwd() if f_fwd else None, j_fwd)
        self.backward = Channel(sim, f"{b.name}->{a.name}", b, a, r_back, d_back, mtu, q_back, l_back,
                                f_back() if f_back else None, j_back)

    def channel_from(self, node) -> Channel:
        return self.forward if node is self.a else self.backward

    def stats(self) -> dict:
        return {"a": self.a.name, "b": self.b.name, "rate_bps": self.rate_bps, "delay_ns": self.delay_ns,
                "mtu": self.mtu, self.forward.name: self.forward.stats(), self.backward.name: self.backward.stats()}
