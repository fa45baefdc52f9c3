"""Wrong world and profile values fail where they are given, with one line naming the parameter.

Each row: what is called, the exception type, and a word the message must contain (the
parameter). Before, many of these were accepted and failed later, deep inside a run (a
65,536-packet queue for queue="64KiB", an AttributeError at the first packet for
jitter="1ms", a division by zero for rate=0.4, a TypeError inside sendto for a profile
field of the wrong type).
"""

import json

import networkx as nx
import pytest

import simsock
from simsock import AF_INET, SOCK_DGRAM, topology
from simsock.net.loss import Bernoulli, GilbertElliott, Jitter
from simsock.net.qdisc import RED, CoDel, DropTail
from simsock.profiles import get_profile, profile_from_dict


def world():
    sim = simsock.Simulation()
    return sim, sim.add_host("a"), sim.add_host("b")


def link(**kw):
    sim, a, b = world()
    sim.add_link(a, b, **kw)


def router(**kw):
    simsock.Simulation().add_router("r", **kw)


def host(**kw):
    simsock.Simulation().add_host("h", **kw)


def profile(**fields):
    profile_from_dict(fields, source="test.json")


def graph(edge=None, node=None):
    G = nx.Graph()
    G.add_node("a", **(node or {}))
    G.add_node("b")
    G.add_edge("a", "b", **(edge or {}))
    topology.from_graph(G)


CASES = [
    # add_link
    (lambda: link(rate=0.4), ValueError, "rate"),
    (lambda: link(rate=0), ValueError, "rate"),
    (lambda: link(rate="-5Mbit"), ValueError, "rate"),
    (lambda: link(rate="fast"), ValueError, "rate"),
    (lambda: link(rate=None), TypeError, "rate"),
    (lambda: link(rate=[10]), TypeError, "rate"),
    (lambda: link(delay=-0.001), ValueError, "delay"),
    (lambda: link(delay="10 parsecs"), ValueError, "delay"),
    (lambda: link(delay=[1]), TypeError, "delay"),
    (lambda: link(loss=1.5), ValueError, "loss"),
    (lambda: link(loss="1%"), TypeError, "loss"),
    (lambda: link(loss=float("nan")), ValueError, "loss"),
    (lambda: link(mtu=20), ValueError, "mtu"),
    (lambda: link(mtu=1500.5), ValueError, "mtu"),
    (lambda: link(mtu=None), TypeError, "mtu"),
    (lambda: link(queue=0), ValueError, "queue"),
    (lambda: link(queue=1.5), TypeError, "queue"),
    (lambda: link(queue="64"), ValueError, "queue"),
    (lambda: link(queue="lots"), ValueError, "queue"),
    (lambda: link(queue="0KiB"), ValueError, "queue"),
    (lambda: link(queue="64KiB", qdisc=DropTail(packets=10)), ValueError, "queue"),
    (lambda: link(jitter="fast"), ValueError, "jitter"),
    (lambda: link(jitter=-1), ValueError, "jitter"),
    (lambda: link(jitter=object()), TypeError, "jitter"),
    (lambda: link(qdisc=5), TypeError, "qdisc"),
    (lambda: link(ab={"rate": 0.4}), ValueError, "rate"),
    (lambda: link(ba={"queue": "64"}), ValueError, "queue"),
    (lambda: link(ab={"jitter": "soon"}), ValueError, "jitter"),
    (lambda: link(ba={"delay": None}), TypeError, "delay"),
    # add_router / add_host
    (lambda: router(queue=0), ValueError, "queue"),
    (lambda: router(queue=-3), ValueError, "queue"),
    (lambda: router(queue=2.5), TypeError, "queue"),
    (lambda: router(queue="lots"), ValueError, "queue"),
    (lambda: router(processing_delay=-1), ValueError, "processing_delay"),
    (lambda: router(processing_delay="fast"), ValueError, "processing_delay"),
    (lambda: router(processing_delay=None), TypeError, "processing_delay"),
    (lambda: router(qdisc="red"), TypeError, "qdisc"),
    (lambda: host(cores=0), ValueError, "cores"),
    (lambda: host(cores="4"), ValueError, "cores"),
    # queue disciplines and loss models
    (lambda: DropTail(packets=0), ValueError, "packets"),
    (lambda: DropTail(bytes="64KiB"), TypeError, "bytes"),
    (lambda: RED(limit_packets=0, min_th=5, max_th=15), ValueError, "limit_packets"),
    (lambda: RED(limit_packets=100, min_th=15, max_th=5), ValueError, "min_th"),
    (lambda: CoDel(target="-5ms"), ValueError, "target"),
    (lambda: CoDel(interval=0.1), TypeError, "interval"),
    (lambda: CoDel(limit=0), ValueError, "limit"),
    (lambda: Jitter(max_ns=-1), ValueError, "max_ns"),
    (lambda: Jitter(max_ns="1ms", reorder="no"), TypeError, "reorder"),
    (lambda: Bernoulli(p=2), ValueError, "p="),
    (lambda: GilbertElliott(p_good_to_bad=-0.1, p_bad_to_good=0.5), ValueError, "p_good_to_bad"),
    # profiles (JSON values)
    (lambda: profile(rmem_default="big"), TypeError, "rmem_default"),
    (lambda: profile(rmem_default=-1), ValueError, "rmem_default"),
    (lambda: profile(syscall_ns=1.5), TypeError, "syscall_ns"),
    (lambda: profile(tcp_rmem=[1, 2]), ValueError, "tcp_rmem"),
    (lambda: profile(tcp_rmem=[3, 2, 1]), ValueError, "tcp_rmem"),
    (lambda: profile(sockopt_buf_doubles="yes"), TypeError, "sockopt_buf_doubles"),
    (lambda: profile(ip_default_ttl=0), ValueError, "ip_default_ttl"),
    (lambda: profile(loopback_mtu=10), ValueError, "loopback_mtu"),
    (lambda: profile(txqueuelen=0), ValueError, "txqueuelen"),
    (lambda: profile(udp_truesize_steps=[[1]]), ValueError, "udp_truesize_steps"),
    (lambda: profile(ip_local_port_range=[60000, 1000]), ValueError, "ip_local_port_range"),
    (lambda: profile(name=5), TypeError, "name"),
    # topology.from_graph passes its attributes through the same checks
    (lambda: graph(edge={"rate": 0.4}), ValueError, "rate"),
    (lambda: graph(edge={"queue": "64"}), ValueError, "queue"),
    (lambda: graph(edge={"jitter": [1]}), TypeError, "jitter"),
]


@pytest.mark.parametrize("call, exc, word", CASES, ids=[f"{i:02d}-{c[2]}" for i, c in enumerate(CASES)])
def test_wrong_value_fails_where_given_naming_the_parameter(call, exc, word):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    assert word in message, message
    assert "\n" not in message, "one line"
    assert type(info.value) is exc


def test_queue_with_a_byte_unit_is_a_byte_limit_and_an_int_is_packets():
    """queue="3000B" holds two 1500-byte packets (bfifo); queue=2 two packets of any size."""
    def delivered(queue, size):
        sim, a, b = world()
        sim.add_link(a, b, rate="1Mbit", delay="1ms", queue=queue)
        got = []

        async def rx(k):
            s = k.socket(AF_INET, SOCK_DGRAM)
            s.bind(("0.0.0.0", 9))
            while True:
                got.append(len(await s.recv(2000)))

        async def tx(k):
            s = k.socket(AF_INET, SOCK_DGRAM)
            for _ in range(10):
                await s.sendto(b"x" * size, ("b", 9))

        b.spawn(rx)
        a.spawn(tx)
        sim.run(until="1s")
        return len(got)

    # 10 datagrams sent at once: one goes on the wire, the queue holds the rest it can
    assert delivered("2916B", 1430) == 1 + 2          # two 1458-byte packets fit in 2916 bytes
    assert delivered("2916B", 100) == 1 + 9           # small ones: all fit
    assert delivered(2, 1430) == delivered(2, 100) == 1 + 2
    assert delivered("2p", 100) == 1 + 2
    sim, a, b = world()
    ch = sim.add_link(a, b, queue="64KiB").forward
    assert ch.queue_bytes_limit == 65536 and ch.queue_packets > 65536
    r = sim.add_router("r", queue="96000B")
    sim.add_link(r, b)
    assert r.links[0].channel_from(r).queue_bytes_limit == 96000


def test_a_byte_queue_in_one_direction_is_that_directions_byte_limit():
    sim, a, b = world()
    link = sim.add_link(a, b, queue=10, ba={"queue": "3000B"})
    assert link.forward.queue_packets == 10 and link.forward.queue_bytes_limit is None
    assert link.backward.queue_bytes_limit == 3000


def test_jitter_as_a_duration_is_a_uniform_jitter():
    sim, a, b = world()
    link = sim.add_link(a, b, jitter="1ms")
    assert isinstance(link.forward.jitter, Jitter) and link.forward.jitter.max_ns == 1_000_000


def test_profile_file_errors_name_the_file_and_the_field(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"wmem_default": "212992"}))
    with pytest.raises(TypeError, match=r"p\.json.*wmem_default"):
        simsock.Simulation(profile=str(path))
    with pytest.raises(ValueError, match="is a directory"):
        simsock.Simulation(profile=str(tmp_path))
    assert get_profile("linux").name == "linux"
