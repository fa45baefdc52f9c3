"""A minimal raw io_uring over ctypes (no liburing), to check on the real kernel what the
simulator models (tests/kernel/completion/test_close_pending.py)."""

from __future__ import annotations

import ctypes
import mmap
import os
import select
import struct

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_setup, SYS_enter = 425, 426
OP_RECV, OP_ASYNC_CANCEL = 27, 14


class Params(ctypes.Structure):
    _fields_ = [("sq_entries", ctypes.c_uint32), ("cq_entries", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("sq_thread_cpu", ctypes.c_uint32), ("sq_thread_idle", ctypes.c_uint32),
                ("features", ctypes.c_uint32), ("wq_fd", ctypes.c_uint32), ("resv", ctypes.c_uint32 * 3),
                ("sq_off", ctypes.c_uint32 * 10), ("cq_off", ctypes.c_uint32 * 10)]


class Ring:
    def __init__(self, entries=8):
        p = Params()
        fd = libc.syscall(SYS_setup, entries, ctypes.byref(p))
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        self.fd, self.p = fd, p
        so, co = p.sq_off, p.cq_off
        self.sq = mmap.mmap(fd, so[6] + p.sq_entries * 4, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self.cq = mmap.mmap(fd, co[5] + p.cq_entries * 16, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                            offset=0x8000000)
        self.sqes = mmap.mmap(fd, p.sq_entries * 64, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                              offset=0x10000000)
        self.bufs = []

    def _u32(self, m, off, val=None):
        if val is None:
            return struct.unpack_from("I", m, off)[0]
        struct.pack_into("I", m, off, val)

    def _push(self, opcode, fd, addr, length, user_data):
        so = self.p.sq_off
        tail = self._u32(self.sq, so[1])
        mask = self._u32(self.sq, so[2])
        i = tail & mask
        sqe = bytearray(64)
        struct.pack_into("BBHiQQII Q", sqe, 0, opcode, 0, 0, fd, 0, addr, length, 0, user_data)
        self.sqes[i * 64:(i + 1) * 64] = bytes(sqe)
        self._u32(self.sq, so[6] + 4 * i, i)
        self._u32(self.sq, so[1], tail + 1)
        n = libc.syscall(SYS_enter, self.fd, 1, 0, 0, None, 0)
        if n < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))

    def recv(self, sockfd, nbytes, user_data):
        buf = ctypes.create_string_buffer(nbytes)
        self.bufs.append(buf)
        self._push(OP_RECV, sockfd, ctypes.addressof(buf), nbytes, user_data)
        return buf

    def cancel(self, target, user_data):
        self._push(OP_ASYNC_CANCEL, -1, target, 0, user_data)

    def peek(self):
        """(user_data, res) of the next CQE, consumed, or None."""
        co = self.p.cq_off
        head, tail = self._u32(self.cq, co[0]), self._u32(self.cq, co[1])
        if head == tail:
            return None
        i = head & self._u32(self.cq, co[2])
        ud, res, _flags = struct.unpack_from("QiI", self.cq, co[5] + 16 * i)
        self._u32(self.cq, co[0], head + 1)
        return ud, res

    def wait(self, timeout: float = 2.0):
        """The next CQE, waiting up to ``timeout`` seconds (the ring fd polls readable when
        the CQ has entries); TimeoutError if none came."""
        cqe = self.peek()
        if cqe is None:
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            poller.poll(int(timeout * 1000))
            cqe = self.peek()
        if cqe is None:
            raise TimeoutError(f"no io_uring completion within {timeout} s")
        return cqe

    def close(self):
        for m in (self.sq, self.cq, self.sqes):
            m.close()
        os.close(self.fd)
