"""A UDP echo: the server is spawned first, the client sends at once (no sleep)."""
from simsock import AF_INET, SOCK_DGRAM


async def echo_server(k):
    s = k.socket(AF_INET, SOCK_DGRAM)
    s.bind(("0.0.0.0", 9000))
    while True:
        data, addr = await s.recvfrom(2048)
        await s.sendto(data.upper(), addr)


async def client(k):
    s = k.socket(AF_INET, SOCK_DGRAM)
    s.settimeout(2.0)
    for word in (b"hello", b"world"):
        await s.sendto(word, ("server", 9000))
        await s.recvfrom(2048)
    s.close()


def world(w):
    server, laptop = w.add_host("server"), w.add_host("laptop")
    w.add_link(laptop, server)
    server.spawn(echo_server)
    laptop.spawn(client)
