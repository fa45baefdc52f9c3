"""Speed work (issue 16) that must not change behaviour: lazy syscall records render exactly as
trace_value does at call time; a run needs no GC thresholds (PyPy)."""

import json

from hypothesis import given
from hypothesis import strategies as st

from simsock.trace import freeze, thaw, trace_value

leaf = st.one_of(st.integers(), st.text(max_size=5), st.none(), st.booleans(),
                 st.floats(allow_nan=False), st.binary(max_size=20),
                 st.binary(max_size=8).map(bytearray))
values = st.recursive(leaf, lambda inner: st.one_of(st.tuples(inner, inner), st.lists(inner, max_size=3),
                                                    st.tuples(inner)), max_leaves=8)


@given(values)
def test_thaw_of_freeze_is_trace_value(v):
    assert thaw(freeze(v)) == trace_value(v)
    assert json.dumps(thaw(freeze(v))) == json.dumps(trace_value(v))


def test_mutable_buffer_is_rendered_when_recorded():
    buf = bytearray(b"abc")
    frozen = freeze((buf, ("h", 1)))
    buf[:] = b"xyz"
    assert thaw(frozen) == trace_value((bytearray(b"abc"), ("h", 1)))


def test_resent_bytes_object_reuses_its_digest():
    data = bytes(100)
    assert freeze(data) is freeze(data)
    assert thaw(freeze(b"other")) == trace_value(b"other")


def test_run_without_gc_thresholds(monkeypatch):
    """PyPy's gc module has no get_threshold/set_threshold: a run must not need them."""
    import gc

    import simsock
    monkeypatch.delattr(gc, "get_threshold")
    monkeypatch.delattr(gc, "set_threshold")
    sim = simsock.Simulation()
    host = sim.add_host("a")

    async def prog(k):
        await k.sleep(0.001)
    host.spawn(prog)
    sim.run()
    assert sim.now == 0.001
