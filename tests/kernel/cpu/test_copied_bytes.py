"""The kernel counts the bytes its socket calls copy between user and kernel memory
(``host.cpu.copied_bytes``), the figure iocp_vs_epoll's C7.3 check reads: what a program
says it copied plays no part."""

import simsock
from simsock import AF_INET, SOCK_DGRAM, SOCK_STREAM


def test_send_and_recv_bytes_are_counted_on_the_host_that_made_the_calls():
    sim = simsock.Simulation(seed=1)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="100Mbit", delay="1ms")

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 80))
        ls.listen()
        c, _ = await ls.accept()
        got = 0
        while got < 5000:
            got += len(await c.recv(700))       # copies what it returns, not what it asked
        await c.sendall(b"y" * 1234)

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        await s.connect(("b", 80))
        await s.sendall(b"x" * 5000)
        n = 0
        while n < 1234:
            n += len(await s.recv(4096))

    b.spawn(server)
    a.spawn(client)
    sim.run(until=2)
    assert b.cpu.copied_bytes == 5000 + 1234
    assert a.cpu.copied_bytes == 5000 + 1234


def test_data_left_in_the_receive_buffer_is_not_counted():
    sim = simsock.Simulation(seed=1)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="100Mbit", delay="1ms")

    async def reader(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", 9))
        await s.recvfrom(2048)                  # one of the three datagrams
        await k.sleep(1)

    async def sender(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await k.sleep(0.001)
        for _ in range(3):
            await s.sendto(b"z" * 300, ("b", 9))

    b.spawn(reader)
    a.spawn(sender)
    sim.run(until=2)
    assert a.cpu.copied_bytes == 900
    assert b.cpu.copied_bytes == 300
