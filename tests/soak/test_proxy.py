#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The soak's proxy (proxy.py) against an echo server: bytes forwarded both ways; cut
closes the client's side and the server's; stall forwards nothing either way and closes
nothing, then forwards what waited; a connection accepted during a stall is not stalled;
a target that refuses closes the client's connection at once.

  test_proxy.py [CASE...]     (forward, cut, stall, refused; none: all)
"""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy  # noqa: E402


class Echo:
    """An echo server on 127.0.0.1 that records when each of its connections ends."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.ended = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c):
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                c.sendall(data)
        except OSError:
            pass
        c.close()
        self.ended.set()


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def connect(p):
    s = socket.create_connection(("127.0.0.1", p.ports[0]), timeout=5)
    return s


def roundtrip(s, data=b"hello"):
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(65536)
        if not chunk:
            fail("connection closed during a round trip")
        got += chunk
    if got != data:
        fail("echoed %r, sent %r" % (got, data))


def case_forward():
    e = Echo()
    p = proxy.Proxy([(0, e.port)])
    s = connect(p)
    roundtrip(s)
    roundtrip(s, os.urandom(300000))
    if p.count() != 1:
        fail("count %d, one connection open" % p.count())


def case_cut():
    e = Echo()
    p = proxy.Proxy([(0, e.port)])
    s = connect(p)
    roundtrip(s)
    if p.cut() != 1:
        fail("cut did not report one connection")
    if s.recv(10) != b"":
        fail("the client's side still open after cut")
    if not e.ended.wait(5):
        fail("the server's side still open after cut")
    roundtrip(connect(p))  # the listener goes on


def case_stall():
    e = Echo()
    p = proxy.Proxy([(0, e.port)])
    s = connect(p)
    roundtrip(s)
    # A stall much longer than the 1 s the test reads through it: a test process
    # descheduled for a while on a loaded machine still reads inside the stall.
    if p.stall(4) != 1:
        fail("stall did not report one connection")
    t = time.monotonic()
    s.sendall(b"stalled")
    s.settimeout(1)
    try:
        data = s.recv(10)
        fail("received %r during the stall" % data)
    except socket.timeout:
        pass
    if e.ended.is_set():
        fail("the server's side closed by a stall")
    roundtrip(connect(p))  # a new connection is not stalled
    s.settimeout(10)
    got = b""
    while len(got) < 7:
        got += s.recv(10)
    if got != b"stalled" or time.monotonic() - t < 3.9:
        fail("after the stall: %r after %.2f s" % (got, time.monotonic() - t))


def case_refused():
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens on port now
    p = proxy.Proxy([(0, port)])
    s = connect(p)
    if s.recv(10) != b"":
        fail("a connection to a refused target stayed open")


def main(cases):
    if sys.argv[1:] == ["--list"]:
        print("\n".join(cases))
        return
    for n in sys.argv[1:] or list(cases):
        if n not in cases:
            fail("no case named %r" % n)
        cases[n]()
        print("ok", n)


main({"forward": case_forward, "cut": case_cut, "stall": case_stall, "refused": case_refused})
