"""The select_scaling and epoll_edge experiments run with small parameters and pass their checks."""

from experiments import epoll_edge, select_scaling


def test_select_scaling_small_passes_its_check(tmp_path):
    """C7.6 at 10..300 idle sockets: select/poll cost per event grows >= 10x, epoll's stays within 1.5x."""
    r = select_scaling.run({"watched": [10, 300], "duration": 0.4, "warmup": 0.4}, 1)
    assert [str(c) for c in select_scaling.check(r) if c.status != "PASS"] == []
    assert r == select_scaling.run({"watched": [10, 300], "duration": 0.4, "warmup": 0.4}, 1)
    assert all(p.exists() for p in select_scaling.plot(r, tmp_path))


def test_epoll_edge_small_passes_its_check(tmp_path):
    """C8.1-C8.3: draining servers serve everyone, the non-draining ET server leaves data stuck."""
    r = epoll_edge.run({"clients": 6, "count": 10, "end": 1.0}, 1)
    assert [str(c) for c in epoll_edge.check(r) if c.status != "PASS"] == []
    bug = [s for s in r["servers"] if "one recv" in s["server"]][0]
    assert bug["bytes_unread"] > 0 and bug["starved"] == 6
    assert all(p.exists() for p in epoll_edge.plot(r, tmp_path))
