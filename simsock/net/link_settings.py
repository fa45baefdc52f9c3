"""What ``add_link`` and ``add_router`` accept for each output port, as what
:class:`~simsock.net.link.Link` and :class:`~simsock.net.router.Router` take: ``qdisc=`` as a
factory of one queue discipline per port, and ``add_link``'s ``ab=``/``ba=`` per-direction
overrides as (a->b, b->a) pairs. Every value is checked by :mod:`simsock.validate`.
"""

from __future__ import annotations

import copy

from simsock import validate
from simsock.net.qdisc import DropTail


def qdisc_factory(qdisc, what: str):
    """What ``qdisc=`` may be, as a zero-argument callable returning a new queue discipline
    for each port: None; a callable (a Qdisc class, a function, a lambda); or an *unused*
    discipline instance (``DropTail(packets=64)``), which serves as a template copied for
    every port, since each port needs a queue of its own."""
    if qdisc is None or isinstance(qdisc, type):
        return qdisc
    if hasattr(qdisc, "enqueue") and hasattr(qdisc, "dequeue"):
        if getattr(qdisc, "on_drop", None) is not None or len(qdisc):
            raise ValueError(f"{what}: {qdisc!r} is already in use on a port; give a new one, e.g. "
                             f"qdisc={type(qdisc).__name__}(...), or a callable that returns a new one")
        template = copy.deepcopy(qdisc)
        return lambda: copy.deepcopy(template)
    if callable(qdisc):
        return qdisc
    raise TypeError(f"{what} must be a queue discipline such as simsock.DropTail(packets=64), or a callable "
                    f"that returns a new one for each port; got {type(qdisc).__name__} {qdisc!r}")


_DIRECTION_KEYS = ("rate", "delay", "loss", "queue", "qdisc", "jitter")


def per_direction(ab, ba, rate_bps, delay_ns, loss, queues, qdiscs, jitter):
    """add_link's ``ab=``/``ba=`` overrides: each setting as an (a->b, b->a) pair."""
    out = {"rate": [rate_bps, rate_bps], "delay": [delay_ns, delay_ns], "loss": [loss, loss],
           "queue": list(queues), "qdisc": list(qdiscs), "jitter": [jitter, jitter]}
    for i, (name, over) in enumerate((("ab", ab), ("ba", ba))):
        if over is None:
            continue
        if not isinstance(over, dict):
            raise TypeError(f"add_link({name}=) must be a dict of settings for the "
                            f"{'a->b' if i == 0 else 'b->a'} direction, e.g. {{'rate': '10Mbit'}}, "
                            f"not {type(over).__name__}")
        for key in over:
            if key not in _DIRECTION_KEYS:
                raise ValueError(f"add_link({name}=): unknown setting {key!r}; a direction has "
                                 f"{', '.join(_DIRECTION_KEYS)}")
        for key in _DIRECTION_KEYS:             # queue before qdisc, as add_link reads them
            if key not in over:
                continue
            value = over[key]
            what = f"add_link({name}={{{key!r}: ...}})"
            if key == "rate":
                value = validate.rate(value, what)
            elif key == "delay":
                value = validate.duration(value, what)
            elif key == "loss":
                value = validate.loss(value, what)
                if not hasattr(value, "lose"):
                    value = value if value > 0 else None
            elif key == "queue":
                kind, value = validate.queue(value, what)
                if kind == "bytes":             # a byte limit is a bfifo on this direction
                    if "qdisc" in over:
                        raise ValueError(f"add_link({name}=): queue in bytes and a qdisc both set the transmit "
                                         f"queue: give one, e.g. 'qdisc': simsock.DropTail(bytes={value})")
                    out["qdisc"][i] = qdisc_factory(DropTail(bytes=value), what)
                    continue
            elif key == "qdisc":
                value = qdisc_factory(validate.qdisc(value, what), what)
            elif key == "jitter":
                value = validate.jitter(value, what)
            out[key][i] = value
    return tuple(tuple(out[k]) for k in _DIRECTION_KEYS)
