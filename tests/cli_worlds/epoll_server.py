"""An epoll echo server (level-triggered) and two clients, one request each."""
from simsock import AF_INET, EPOLLIN, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR


async def epoll_server(k):
    ls = k.socket(AF_INET, SOCK_STREAM)
    ls.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", 9002))
    ls.listen(8)
    ep = k.epoll()
    ep.register(ls, EPOLLIN)
    conns = {}
    served = 0
    while served < 2:
        for fd, _events in await ep.poll(2.0):
            if fd == ls.fileno():
                conn, _ = await ls.accept()
                conns[conn.fileno()] = conn
                ep.register(conn, EPOLLIN)
                continue
            conn = conns[fd]
            data = await conn.recv(100)
            if data:
                await conn.sendall(data.upper())
            else:
                ep.unregister(conn)
                conn.close()
                del conns[fd]
                served += 1
    ep.close()
    ls.close()


async def client(k, word, start):
    await k.sleep(start)   # one client after the other: which events one poll returns together is timing
    s = k.socket(AF_INET, SOCK_STREAM)
    await s.connect(("server", 9002))
    await s.sendall(word)
    reply = await s.recv(100)
    assert reply == word.upper(), reply
    s.close()


def world(w):
    server, a, b = w.add_host("server"), w.add_host("a"), w.add_host("b")
    w.add_link(a, server)
    w.add_link(b, server)
    server.spawn(epoll_server)
    a.spawn(client, b"one", 0.1)
    b.spawn(client, b"two", 0.4)
