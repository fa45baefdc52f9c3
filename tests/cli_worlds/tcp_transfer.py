"""A TCP transfer of 60 kB with sendall; the reader counts bytes until end of file.

How many bytes one recv returns depends on timing (what has arrived by then), which differs
between kernels; the reader therefore waits until the transfer is in its receive buffer."""
from simsock import AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR

TOTAL = 60_000


async def reader(k):
    ls = k.socket(AF_INET, SOCK_STREAM)
    ls.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", 9001))
    ls.listen(8)
    conn, _ = await ls.accept()
    await k.sleep(0.5)   # let the whole transfer arrive, so each recv returns what is queued
    got = 0
    while True:
        data = await conn.recv(1 << 20)
        if not data:
            break
        got += len(data)
    await conn.sendall(str(got).encode())
    conn.close()
    ls.close()


async def writer(k):
    s = k.socket(AF_INET, SOCK_STREAM)
    await s.connect(("server", 9001))
    await s.sendall(b"x" * TOTAL)
    s.shutdown(1)
    answer = b""
    while True:
        data = await s.recv(100)
        if not data:
            break
        answer += data
    assert answer == str(TOTAL).encode(), answer
    s.close()


def world(w):
    server, laptop = w.add_host("server"), w.add_host("laptop")
    w.add_link(laptop, server)
    server.spawn(reader)
    laptop.spawn(writer)
