"""What a link does to packets besides delaying them: random loss and jitter.

A link asks its loss model once per packet, ``model.lose(rng) -> bool``, with the link's own
named random stream (DESIGN.md, principle 2). Each model makes a *fixed* number of draws per
packet whatever the outcome and whatever its parameters, so that changing a loss rate does
not shift which random numbers later packets see — two runs that differ only in ``p`` stay
comparable packet by packet.

- :class:`Bernoulli` — independent losses with probability ``p`` (``tc netem loss p%``).
- :class:`GilbertElliott` — a two-state Markov chain (good/bad) with a loss probability per
  state, which makes losses come in bursts as on wireless links (Gilbert 1960, Elliott 1963;
  ``tc netem loss gemodel p r 1-h 1-k``, ``net/sched/sch_netem.c: loss_gilbert_elliott``).
- :class:`Jitter` — a random extra delay per packet that keeps packets in order unless
  ``reorder=True`` (netem's time-sorted queue lets a packet overtake another when their
  jittered times cross; a real path rarely reorders, so in order is the default here).
"""

from __future__ import annotations

import math
import random

from simsock.units import ns_duration

__all__ = ["LossModel", "Bernoulli", "GilbertElliott", "Jitter"]


def _probability(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{what} must be a probability (a number in [0, 1], e.g. 0.01), got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be in [0, 1] (a probability, not a percentage), got {value!r}")
    return float(value)


class LossModel:
    """Interface: ``lose(rng) -> bool`` once per packet, and ``stats()``."""

    def __init__(self) -> None:
        self.packets = 0
        self.lost = 0

    def lose(self, rng: random.Random) -> bool:
        raise NotImplementedError

    def stats(self) -> dict:
        return {"packets": self.packets, "lost": self.lost,
                "loss_rate": self.lost / self.packets if self.packets else 0.0}


class Bernoulli(LossModel):
    """Each packet is lost independently with probability ``p``.

    Draw order: exactly one ``rng.random()`` per packet; the packet is lost if it is ``< p``.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = _probability(p, "Bernoulli(p=)")

    def lose(self, rng: random.Random) -> bool:
        self.packets += 1
        if rng.random() < self.p:
            self.lost += 1
            return True
        return False

    def __repr__(self) -> str:
        return f"Bernoulli(p={self.p})"


class GilbertElliott(LossModel):
    """Two-state Markov loss: good and bad states, each with its own loss probability.

    Per packet, in this order (as netem's ``loss_gilbert_elliott``): one draw decides the
    state transition (good -> bad with ``p_good_to_bad``, bad -> good with
    ``p_bad_to_good``), then one draw decides the loss in the *new* state (``loss_good`` or
    ``loss_bad``). Always two ``rng.random()`` draws per packet. The chain starts good.

    Stationary probability of the bad state: ``p_gb / (p_gb + p_bg)``, so the mean loss rate
    is ``(p_bg * loss_good + p_gb * loss_bad) / (p_gb + p_bg)``; with ``loss_good = 0`` and
    ``loss_bad = 1`` losses come in bursts of geometric length with mean ``1 / p_bg``.
    """

    def __init__(self, p_good_to_bad: float, p_bad_to_good: float,
                 loss_good: float = 0.0, loss_bad: float = 1.0) -> None:
        super().__init__()
        self.p_good_to_bad = _probability(p_good_to_bad, "GilbertElliott(p_good_to_bad=)")
        self.p_bad_to_good = _probability(p_bad_to_good, "GilbertElliott(p_bad_to_good=)")
        self.loss_good = _probability(loss_good, "GilbertElliott(loss_good=)")
        self.loss_bad = _probability(loss_bad, "GilbertElliott(loss_bad=)")
        self.bad = False
        self.bad_packets = 0

    @property
    def stationary_loss_rate(self) -> float:
        """Long-run fraction of packets lost (the chain's stationary mean)."""
        total = self.p_good_to_bad + self.p_bad_to_good
        if total == 0:
            return self.loss_good   # never leaves the initial (good) state
        return (self.p_bad_to_good * self.loss_good + self.p_good_to_bad * self.loss_bad) / total

    def lose(self, rng: random.Random) -> bool:
        self.packets += 1
        u_transition = rng.random()
        u_loss = rng.random()
        if self.bad:
            if u_transition < self.p_bad_to_good:
                self.bad = False
        elif u_transition < self.p_good_to_bad:
            self.bad = True
        if self.bad:
            self.bad_packets += 1
        if u_loss < (self.loss_bad if self.bad else self.loss_good):
            self.lost += 1
            return True
        return False

    def stats(self) -> dict:
        s = super().stats()
        s["bad_packets"] = self.bad_packets
        return s

    def __repr__(self) -> str:
        return (f"GilbertElliott(p_good_to_bad={self.p_good_to_bad}, p_bad_to_good={self.p_bad_to_good}, "
                f"loss_good={self.loss_good}, loss_bad={self.loss_bad})")


class Jitter:
    """A uniform random extra delay in ``[0, max_ns]`` per packet.

    ``delay(rng, now, last_arrival)``: ``now`` is the time this packet would arrive without
    jitter, ``last_arrival`` the arrival time already scheduled for the previous packet on
    the same link (0 if none). One ``rng.randint(0, max_ns)`` draw per packet gives the
    candidate ``now + u``. Unless ``reorder`` is True, the packet may not overtake the one
    before it: arrival = ``max(candidate, last_arrival)``. Returns ``arrival - now`` (>= 0).
    """

    def __init__(self, max_ns="2ms", reorder: bool = False) -> None:
        self.max_ns = ns_duration(max_ns, "Jitter(max_ns=)", "2ms")
        if not isinstance(reorder, bool):
            raise TypeError(f"Jitter(reorder=) must be True or False, not {type(reorder).__name__} {reorder!r}")
        self.reorder = reorder

    def delay(self, rng: random.Random, now: int, last_arrival: int = 0) -> int:
        candidate = now + rng.randint(0, self.max_ns)
        if not self.reorder and candidate < last_arrival:
            candidate = last_arrival
        return candidate - now

    def __repr__(self) -> str:
        return f"Jitter(max_ns={self.max_ns}, reorder={self.reorder})"
