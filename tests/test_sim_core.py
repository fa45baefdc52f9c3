"""The simulation core: building worlds, links (serialisation, delay, queue, loss),
loopback, routes."""

import errno

import pytest

import simsock
from simsock import AF_INET, SOCK_DGRAM
from tests.worlds import NO_CPU_COSTS, two_hosts


async def sink(k, port, log, count=None):
    """Bind ``port`` and record (time_ns, payload) of every datagram."""
    s = k.socket(AF_INET, SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while count is None or len(log) < count:
        data = await s.recv(65535)
        log.append((k.now_ns, data))


# -- world building --------------------------------------------------------------------------

def test_duplicate_host_name_rejected():
    """Two nodes cannot share a name; the message names it."""
    sim = simsock.Simulation()
    sim.add_host("a")
    with pytest.raises(ValueError, match=r"^there is already a node called 'a'$"):
        sim.add_host("a")


def test_localhost_is_not_a_host_name():
    """'localhost' (any case) is reserved for every host's loopback."""
    sim = simsock.Simulation()
    with pytest.raises(ValueError, match="'localhost' is every host's own loopback name"):
        sim.add_host("LocalHost")


@pytest.mark.parametrize("name", ["", 3, None])
def test_host_name_must_be_nonempty_str(name):
    """A host name must be a non-empty str."""
    sim = simsock.Simulation()
    with pytest.raises(TypeError, match="a node name must be a non-empty str"):
        sim.add_host(name)


@pytest.mark.parametrize("cores", [0, -1, 1.5, True])
def test_cores_must_be_positive_int(cores):
    """cores must be a positive int."""
    sim = simsock.Simulation()
    with pytest.raises(ValueError, match="cores must be a positive int"):
        sim.add_host("a", cores=cores)


def test_hosts_get_addresses_in_creation_order():
    """Hosts are numbered 10.0.0.1, 10.0.0.2, ... in the order they are added."""
    sim = simsock.Simulation()
    assert [sim.add_host(n).address for n in "xyz"] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(rate="0"), ValueError, "link rate must be positive, got '0'"),
    (dict(rate="fast"), ValueError, "cannot read 'fast' as a link rate"),
    (dict(rate=-1), ValueError, "link rate must be positive, got -1"),
    (dict(delay=-1), ValueError, "link delay must not be negative, got -1"),
    (dict(delay="soon"), ValueError, "cannot read 'soon' as a link delay"),
    (dict(loss=1.5), ValueError, "loss must be a probability between 0 and 1, got 1.5"),
    (dict(loss=-0.1), ValueError, "loss must be a probability between 0 and 1, got -0.1"),
    (dict(loss="x"), TypeError, "loss must be a probability or a loss model with .lose(rng), got 'x'"),
    (dict(mtu=67), ValueError, "mtu must be between 68 and 65536 bytes, got 67"),
    (dict(mtu=70000), ValueError, "mtu must be between 68 and 65536 bytes, got 70000"),
    (dict(queue=0), ValueError, "queue must hold at least one packet, got 0"),
    (dict(qdisc=3), TypeError, "add_link(qdisc=) must be a queue discipline such as simsock.DropTail"),
])
def test_add_link_validation(kwargs, exc, message):
    """Bad link parameters raise at add_link with a message naming the parameter and value."""
    sim = simsock.Simulation()
    a, b = sim.add_host("a"), sim.add_host("b")
    with pytest.raises(exc) as info:
        sim.add_link(a, b, **kwargs)
    assert str(info.value).startswith(message)
    assert sim.links == []


def test_add_link_unknown_node_name():
    """A link to an unknown name fails, listing the known names."""
    sim = simsock.Simulation()
    sim.add_host("a")
    sim.add_host("b")
    with pytest.raises(ValueError, match=r"^no host or router called 'zz'; known: \['a', 'b'\]$"):
        sim.add_link("a", "zz")


def test_add_link_to_self_and_twice():
    """A link needs two different nodes, and two nodes are linked at most once (either order)."""
    sim = simsock.Simulation()
    a, b = sim.add_host("a"), sim.add_host("b")
    with pytest.raises(ValueError, match="a link needs two different nodes, got 'a' twice"):
        sim.add_link(a, "a")
    sim.add_link("a", "b")
    with pytest.raises(ValueError, match="'b' and 'a' are already linked"):
        sim.add_link(b, a)


def test_add_link_foreign_host_and_wrong_type():
    """A host of another simulation, or a non-node, is rejected."""
    sim = simsock.Simulation()
    a = sim.add_host("a")
    other = simsock.Simulation().add_host("q")
    with pytest.raises(ValueError, match="belongs to another simulation"):
        sim.add_link(a, other)
    with pytest.raises(TypeError, match="expected a host, router or node name, got int"):
        sim.add_link(a, 5)


def test_run_until_in_the_past():
    """run(until) earlier than now is an error saying where the simulation is."""
    sim = simsock.Simulation()
    sim.run(until="1s")
    assert sim.now == 1.0
    with pytest.raises(ValueError, match=r"until=0.5 is in the past: the simulation is already at 1.0s"):
        sim.run(until=0.5)


def test_seed_must_be_int():
    """Simulation(seed=...) requires an int."""
    with pytest.raises(TypeError, match="seed must be an int, not str"):
        simsock.Simulation(seed="1")


# -- link timing -----------------------------------------------------------------------------

def test_serialisation_plus_delay_exact_ns():
    """A 1000-byte UDP payload is 1028 IP bytes; over 10 Mbit/s + 5 ms it arrives at exactly
    5_000_000 + 1028*8*100 = 5_822_400 ns after being sent at t=0."""
    sim, a, b = two_hosts(rate="10Mbit", delay="5ms")
    log = []
    b.spawn(sink, 9000, log)

    async def send(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.sendto(b"x" * 1000, ("b", 9000))

    a.spawn(send)
    sim.run(until="1s")
    assert log == [(5_822_400, b"x" * 1000)]


def test_back_to_back_packets_serialise_one_after_another():
    """Three 1000-byte datagrams sent at t=0 arrive 822_400 ns apart (the wire is FIFO)."""
    sim, a, b = two_hosts(rate="10Mbit", delay="5ms")
    log = []
    b.spawn(sink, 9000, log)

    async def send(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for i in range(3):
            await s.sendto(bytes([i]) * 1000, ("b", 9000))

    a.spawn(send)
    sim.run(until="1s")
    assert [t for t, _ in log] == [5_822_400, 5_822_400 + 822_400, 5_822_400 + 2 * 822_400]
    assert [d[0] for _, d in log] == [0, 1, 2]


def test_serialisation_rounds_up_to_whole_ns():
    """Serialisation time rounds up to whole ns: 29 IP bytes (1-byte payload) = 232 bits at
    7 Mbit/s is 33142.857... ns -> 33143 ns (zero delay)."""
    sim, a, b = two_hosts(rate=7_000_000, delay=0)
    log = []
    b.spawn(sink, 9000, log)

    async def send(k):
        await k.socket(AF_INET, SOCK_DGRAM).sendto(b"z", ("b", 9000))

    a.spawn(send)
    sim.run(until="1s")
    assert log == [(33143, b"z")]


def test_fifo_queue_limit_drops_counted():
    """With queue=3, ten datagrams sent at once: one goes on the wire, three wait, six are
    dropped as queue_full, counted on the channel and in sim.drops."""
    sim, a, b = two_hosts(rate="1Mbit", delay="1ms", queue=3)
    log = []
    b.spawn(sink, 9000, log)

    async def send(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for i in range(10):
            assert await s.sendto(bytes([i]) * 100, ("b", 9000)) == 100

    a.spawn(send)
    sim.run(until="1s")
    assert [d[0] for _, d in log] == [0, 1, 2, 3]
    stats = sim.stats()
    assert stats["links"]["a-b"]["a->b"]["drops_queue"] == 6
    assert stats["links"]["a-b"]["a->b"]["tx_packets"] == 4
    assert stats["drops"] == {"queue_full": 6}


def test_queue_frees_as_packets_leave():
    """After the queue drains, new packets are accepted again (queue=1, sends spaced by
    more than one serialisation time are never dropped)."""
    sim, a, b = two_hosts(rate="1Mbit", delay="1ms", queue=1)
    log = []
    b.spawn(sink, 9000, log)

    async def send(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for i in range(5):
            await s.sendto(bytes([i]) * 100, ("b", 9000))
            await k.sleep("1ms")     # 128 bytes take 1.024 ms at 1 Mbit/s

    a.spawn(send)
    sim.run(until="1s")
    assert len(log) == 5
    assert sim.drops == {}


def _loss_run(seed, n=2000):
    sim, a, b = two_hosts(seed=seed, rate="1Gbit", delay="1ms", loss=0.5)
    log = []
    b.spawn(sink, 9000, log)

    async def send(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for i in range(n):
            await s.sendto(i.to_bytes(4, "big"), ("b", 9000))
            await k.sleep("10us")

    a.spawn(send)
    sim.run(until="1s")
    return [int.from_bytes(d, "big") for _, d in log], sim


def test_loss_half_fraction_and_determinism():
    """loss=0.5 loses about half the packets (2000 sent: 45%..55% received), counted as
    'loss' drops; the same seed loses exactly the same packets."""
    got, sim = _loss_run(seed=7)
    assert 900 <= len(got) <= 1100
    assert sim.drops == {"loss": 2000 - len(got)}
    assert sim.stats()["links"]["a-b"]["a->b"]["drops_loss"] == 2000 - len(got)
    assert got == sorted(got)
    again, _ = _loss_run(seed=7)
    assert again == got


def test_loss_one_and_zero():
    """loss=1.0 loses everything; loss=0 loses nothing."""
    for loss, expected in [(1.0, 0), (0.0, 20)]:
        sim, a, b = two_hosts(rate="1Gbit", loss=loss)
        log = []
        b.spawn(sink, 9000, log)

        async def send(k):
            s = k.socket(AF_INET, SOCK_DGRAM)
            for i in range(20):
                await s.sendto(b"p", ("b", 9000))

        a.spawn(send)
        sim.run(until="1s")
        assert len(log) == expected


@pytest.mark.parametrize("dest", ["127.0.0.1", "localhost", "a", "10.0.0.1", "127.5.6.7"])
def test_loopback_delivery_same_instant(dest):
    """Traffic to 127.0.0.0/8, localhost or the host's own address stays on the host and
    arrives at the instant it was sent (no delay, no rate limit); no link is needed."""
    sim = simsock.Simulation(profile=NO_CPU_COSTS)   # no wake-up latency: the network alone
    a = sim.add_host("a")
    log = []
    a.spawn(sink, 9000, log)

    async def send(k):
        await k.sleep("3ms")
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.sendto(b"L" * 60000, (dest, 9000))

    a.spawn(send)
    sim.run(until="1s")
    assert log == [(3_000_000, b"L" * 60000)]


def test_sendto_unlinked_host_enetunreach():
    """sendto to a host with no path raises OSError(ENETUNREACH) at once, counted as
    OutNoRoutes; nothing is sent."""
    sim = simsock.Simulation()
    a = sim.add_host("a")
    sim.add_host("c")
    seen = []

    async def send(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        try:
            await s.sendto(b"x", ("c", 9000))
        except OSError as exc:
            seen.append((type(exc), exc.errno, exc.strerror, k.now_ns))

    a.spawn(send)
    sim.run(until="1s")
    assert seen == [(OSError, errno.ENETUNREACH, "Network is unreachable", 0)]
    assert a.ip_mib["OutNoRoutes"] == 1
    assert a.udp.mib["OutDatagrams"] == 0


def test_connect_unlinked_host_enetunreach():
    """connect() on UDP to an unreachable host fails with ENETUNREACH as on Linux."""
    sim = simsock.Simulation()
    a = sim.add_host("a")
    sim.add_host("c")
    seen = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        try:
            await s.connect(("c", 9))
        except OSError as exc:
            seen.append(exc.errno)
        seen.append(await s.connect_ex(("c", 9)))

    a.spawn(prog)
    sim.run(until="1s")
    assert seen == [errno.ENETUNREACH, errno.ENETUNREACH]


def test_hosts_do_not_forward():
    """In a chain a-b-c, a datagram from a to c reaches b, which does not forward
    (ip_forward=0) and drops it as not_for_me."""
    sim = simsock.Simulation()
    a, b, c = (sim.add_host(n) for n in "abc")
    sim.add_link(a, b, delay="1ms")
    sim.add_link(b, c, delay="1ms")
    log = []
    c.spawn(sink, 9000, log)

    async def send(k):
        await k.socket(AF_INET, SOCK_DGRAM).sendto(b"x", ("c", 9000))

    a.spawn(send)
    sim.run(until="1s")
    assert log == []
    assert sim.drops == {"not_for_me": 1}
    assert b.drops_not_for_me == 1


def test_run_includes_events_at_until_and_continues():
    """run(until=T) processes everything due at exactly T; a second run continues from T."""
    sim = simsock.Simulation()
    a = sim.add_host("a")
    times = []

    async def ticker(k):
        for _ in range(3):
            await k.sleep("1s")
            times.append(k.now_ns)

    a.spawn(ticker)
    sim.run(until="1s")
    assert times == [1_000_000_000]
    assert sim.now_ns == 1_000_000_000
    sim.run(until="2.5s")
    assert times == [1_000_000_000, 2_000_000_000]
    assert sim.now == 2.5
    sim.run()
    assert times == [1_000_000_000, 2_000_000_000, 3_000_000_000]


def test_stats_shape():
    """sim.stats() reports per-host MIB counters and per-link channel counters."""
    sim, a, b = two_hosts(rate="10Mbit", delay="5ms")
    log = []
    b.spawn(sink, 9000, log)

    async def send(k):
        await k.socket(AF_INET, SOCK_DGRAM).sendto(b"x" * 1000, ("b", 9000))

    a.spawn(send)
    sim.run(until="1s")
    st = sim.stats()
    assert st["time_s"] == 1.0
    assert st["hosts"]["a"]["udp"]["OutDatagrams"] == 1
    assert st["hosts"]["b"]["udp"]["InDatagrams"] == 1
    ch = st["links"]["a-b"]["a->b"]
    assert ch["tx_packets"] == 1 and ch["tx_bytes"] == 1028
    assert ch["utilisation"] == round(822_400 / 1e9, 6)
    assert st["links"]["a-b"]["b->a"]["tx_packets"] == 0
