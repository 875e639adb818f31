#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A hostile AMQP 0-9-1 broker for tests/integration/test_hostile.sh (stdlib only).

    hostile_broker.py CASE PORT_FILE [--after-publishes N]

Listens on 127.0.0.1 on a port the kernel chooses, writes that port to PORT_FILE (written
to PORT_FILE.tmp, then renamed, so a reader never sees half of it) and serves ONE
connection: a real handshake (protocol header, connection.start with mechanisms PLAIN and
the capabilities publisher_confirms and basic.nack, start-ok, tune with channel_max 2047,
the case's frame_max and heartbeat 0, tune-ok, open, open-ok), channel.open-ok and
confirm.select-ok on request, then the misbehaviour of CASE right after the first
channel.open-ok (in the same write, so the client reads both at once):

    close-text-escapes        connection.close 506 with control bytes, invalid UTF-8, a
                              NUL and valid UTF-8 in the reply text
    frame-2gib                a frame header announcing a 2 GiB payload on channel 0
    bad-frame-end             a method frame (connection.unblocked) ending in 0x00, not 0xCE
    deliver-unopened-channel  basic.deliver on channel 77, which the client never opened
    unknown-method            a method frame of class 60, method 999 on channel 1
    truncated-open-ok         instead of the open-ok: class and method ids only, the
                              reserved longstr missing
    small-frame-max           no misbehaviour: frame_max 4096; every frame the client sends
                              is checked against it, and each message's body frames must
                              add up to its content header's body size
    close-echoes-password     connection.close 320 whose reply text holds the password the
                              client logged in with (a broker or proxy echoing it)
    drop-at-channel-close     takes every publish and proves none: salvo's channel.flow
                              checkpoints go unanswered, and the client's channel.close is
                              met by a reset of the connection (a broker lost just then)
    channel-flow              with --after-publishes N: channel.flow active=false on the
                              publishes' channel; once the client's flow-ok comes, counts
                              the basic.publish that arrive for FLOW_OFF_S seconds (must be
                              none), then channel.flow active=true; logs each flow-ok

With --after-publishes N the misbehaviour comes once the client has sent N basic.publish
instead, that is while it is busy publishing (not for truncated-open-ok, small-frame-max).
channel.flow from the client (salvo's best-effort checkpoints) is answered with flow-ok.

Every line on stdout is one event, so the test can grep for what the client did:

    client tune-ok channel_max 2047 frame_max 131072 heartbeat 60
    client channel.open 1
    client published 3 messages (first on channel 1)
    client connection.close 501 'frame end octet is 0x00, not 0xce' class 0 method 0
    client connection.close-ok
    client EOF
    check ok: ... / CHECK FAILED: ...

A reply text is printed with bytes outside printable ASCII as \\xNN. The whole run gives up
after 10 s ("timeout: ..."), so a test never hangs on it. Exit status 0, or 1 when a check
failed or the client broke the protocol in a way this broker does not expect.
"""

import os
import signal
import socket
import struct
import sys
import time

GIVE_UP_S = 10.0
FLOW_OFF_S = 2.0
FRAME_END = 0xCE
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

METHOD_NAMES = {
    (10, 10): "connection.start", (10, 11): "connection.start-ok",
    (10, 20): "connection.secure", (10, 21): "connection.secure-ok",
    (10, 30): "connection.tune", (10, 31): "connection.tune-ok",
    (10, 40): "connection.open", (10, 41): "connection.open-ok",
    (10, 50): "connection.close", (10, 51): "connection.close-ok",
    (10, 60): "connection.blocked", (10, 61): "connection.unblocked",
    (20, 10): "channel.open", (20, 11): "channel.open-ok",
    (20, 20): "channel.flow", (20, 21): "channel.flow-ok",
    (20, 40): "channel.close", (20, 41): "channel.close-ok",
    (40, 10): "exchange.declare", (50, 10): "queue.declare",
    (60, 10): "basic.qos", (60, 20): "basic.consume", (60, 40): "basic.publish",
    (60, 60): "basic.deliver", (60, 80): "basic.ack", (60, 120): "basic.nack",
    (85, 10): "confirm.select", (85, 11): "confirm.select-ok",
    (90, 10): "tx.select",
}

# The reply text of close-text-escapes: an ANSI colour sequence, BEL, two bytes that are not
# UTF-8, a NUL, then valid UTF-8 (e-acute t e-acute).
EVIL_TEXT = b"\x1b[31m evil \x07 \xff\xfe \x00after-nul \xc3\xa9t\xc3\xa9"

CASES = {
    "close-text-escapes": {},
    "frame-2gib": {},
    "bad-frame-end": {},
    "deliver-unopened-channel": {},
    "unknown-method": {},
    "truncated-open-ok": {},
    "small-frame-max": {"frame_max": 4096},
    "drop-at-channel-close": {},
    "close-echoes-password": {},
    "channel-flow": {},
}

# The password of the client's PLAIN login, for close-echoes-password.
login_password = b""

failed = False


def log(line):
    print(line, flush=True)


def check(ok, what):
    global failed
    if ok:
        log("check ok: " + what)
    else:
        failed = True
        log("CHECK FAILED: " + what)


def esc(b):
    """Bytes as printable ASCII, everything else as \\xNN."""
    return "".join(chr(c) if 0x20 <= c < 0x7F and c != 0x5C else "\\x%02x" % c for c in b)


# Encoding.

def shortstr(b):
    if isinstance(b, str):
        b = b.encode()
    assert len(b) < 256
    return struct.pack(">B", len(b)) + b


def longstr(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">I", len(b)) + b


def table(entries):
    body = b""
    for key, (kind, value) in entries:
        body += shortstr(key) + kind.encode()
        if kind == "t":
            body += struct.pack(">B", 1 if value else 0)
        elif kind == "S":
            body += longstr(value)
        elif kind == "F":
            body += table(value)
        else:
            raise ValueError(kind)
    return struct.pack(">I", len(body)) + body


def frame(ftype, channel, payload, end=FRAME_END):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([end])


def method(channel, class_id, method_id, args=b"", end=FRAME_END):
    return frame(1, channel, struct.pack(">HH", class_id, method_id) + args, end)


# Decoding of what the client sends.

class Reader:
    def __init__(self, payload):
        self.p = payload
        self.i = 0

    def take(self, n):
        if self.i + n > len(self.p):
            raise ValueError("payload too short")
        b = self.p[self.i:self.i + n]
        self.i += n
        return b

    def octet(self):
        return self.take(1)[0]

    def short(self):
        return struct.unpack(">H", self.take(2))[0]

    def long(self):
        return struct.unpack(">I", self.take(4))[0]

    def longlong(self):
        return struct.unpack(">Q", self.take(8))[0]

    def shortstr(self):
        return self.take(self.octet())

    def longstr(self):
        return self.take(self.long())


class ClientGone(Exception):
    pass


class Tick(Exception):
    """tick_at has come with no whole frame read; the bytes read so far are kept."""


class Conn:
    def __init__(self, sock, deadline):
        self.sock = sock
        self.deadline = deadline
        self.buf = bytearray()
        self.tick_at = None  # a time at which a read gives up with Tick

    def _fill(self, n):
        while len(self.buf) < n:
            now = time.monotonic()
            left = self.deadline - now
            if left <= 0:
                raise socket.timeout()
            if self.tick_at is not None:
                if self.tick_at <= now:
                    raise Tick()
                left = min(left, self.tick_at - now)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                if self.tick_at is not None and time.monotonic() >= self.tick_at:
                    raise Tick()
                raise
            except ConnectionResetError:
                raise ClientGone("client reset the connection")
            if not chunk:
                raise ClientGone("client EOF" + (" (%d bytes of a frame unread)" % len(self.buf)
                                                 if self.buf else ""))
            self.buf += chunk

    def read_exact(self, n):
        self._fill(n)
        b = bytes(self.buf[:n])
        del self.buf[:n]
        return b

    def read_frame(self):
        """(type, channel, payload, total size); a bad frame end is logged and fails."""
        self._fill(7)
        ftype, channel, size = struct.unpack(">BHI", self.buf[:7])
        self._fill(7 + size + 1)
        payload = bytes(self.buf[7:7 + size])
        end = self.buf[7 + size]
        del self.buf[:7 + size + 1]
        if end != FRAME_END:
            check(False, "client frame (type %d, channel %d) ends with 0x%02x" %
                  (ftype, channel, end))
        return ftype, channel, payload, 7 + size + 1

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            log("send failed: %s" % e)


def name(cm):
    return METHOD_NAMES.get(cm, "method %d.%d" % cm)


def expect_method(conn, want):
    ftype, channel, payload, _ = conn.read_frame()
    if ftype != 1 or len(payload) < 4:
        raise ClientGone("PROTOCOL: expected %s, got a frame of type %d" % (name(want), ftype))
    cm = struct.unpack(">HH", payload[:4])
    if cm != want:
        raise ClientGone("PROTOCOL: expected %s, got %s" % (name(want), name(cm)))
    return channel, Reader(payload[4:])


def handshake(conn, frame_max):
    header = conn.read_exact(8)
    if header != PROTOCOL_HEADER:
        raise ClientGone("PROTOCOL: header %s" % esc(header))
    log("client protocol header AMQP 0-9-1")
    props = table([
        ("capabilities", ("F", [("publisher_confirms", ("t", True)),
                                ("basic.nack", ("t", True)),
                                ("consumer_cancel_notify", ("t", True)),
                                ("connection.blocked", ("t", True))])),
        ("product", ("S", "hostile_broker")),
        ("version", ("S", "0.0.1")),
    ])
    conn.send(method(0, 10, 10, struct.pack(">BB", 0, 9) + props + longstr("PLAIN") +
                     longstr("en_US")))
    _, r = expect_method(conn, (10, 11))
    r.longstr()  # client properties
    mechanism = r.shortstr()
    response = r.longstr()
    global login_password
    login_password = response.split(b"\x00")[2] if response.count(b"\x00") == 2 else b""
    log("client start-ok mechanism %s, user %s" %
        (esc(mechanism), esc(response.split(b"\x00")[1] if response.count(b"\x00") == 2 else b"?")))
    conn.send(method(0, 10, 30, struct.pack(">HIH", 2047, frame_max, 0)))
    _, r = expect_method(conn, (10, 31))
    tune = (r.short(), r.long(), r.short())
    log("client tune-ok channel_max %d frame_max %d heartbeat %d" % tune)
    _, r = expect_method(conn, (10, 40))
    log("client connection.open vhost '%s'" % esc(r.shortstr()))
    conn.send(method(0, 10, 41, shortstr("")))
    return tune


def misbehaviour(case):
    """The bytes sent right after the first channel.open-ok (on channel 1)."""
    if case == "close-text-escapes":
        return method(0, 10, 50, struct.pack(">H", 506) + shortstr(EVIL_TEXT) +
                      struct.pack(">HH", 0, 0))
    if case == "frame-2gib":
        # Only the header: a client that waits for the payload waits for ever (and gets
        # the timeout); one that buffers it first has to allocate 2 GiB.
        return struct.pack(">BHI", 1, 0, 0x80000000)
    if case == "bad-frame-end":
        return method(0, 10, 61, end=0x00)
    if case == "deliver-unopened-channel":
        return method(77, 60, 60, shortstr("ctag") + struct.pack(">QB", 1, 0) +
                      shortstr("") + shortstr("q"))
    if case == "close-echoes-password":
        return method(0, 10, 50, struct.pack(">H", 320) +
                      shortstr(b"CONNECTION_FORCED - session of guest:" + login_password +
                               b" ended (" + login_password + b")") + struct.pack(">HH", 0, 0))
    if case == "unknown-method":
        return method(1, 60, 999, b"\x00\x00\x00\x00")
    return b""


class Session:
    def __init__(self, conn, case, frame_max, after_publishes):
        self.conn = conn
        self.after_publishes = after_publishes
        self.flows = 0
        self.case = case
        self.frame_max = frame_max
        self.published = 0
        self.publish_channel = None
        # channel -> [declared body size, bytes received, body frames] of a message in progress
        self.pending = {}
        self.misbehaved = False
        self.bodies = []  # small-frame-max: (declared, received) per message
        self.largest = 0
        # channel-flow: None, "stopping" (flow off sent), "off" (its flow-ok came),
        # "resuming" (flow on sent), "on" (its flow-ok came); publishes while "off"
        self.flow = None
        self.off_publishes = 0

    def flow_tick(self):
        """channel-flow: the time flow stays off is over."""
        self.conn.tick_at = None
        check(self.off_publishes == 0,
              "%d basic.publish while flow was off" % self.off_publishes)
        self.flow = "resuming"
        self.conn.send(method(self.publish_channel, 20, 20, struct.pack(">B", 1)))

    def flow_ok(self, active):
        log("client channel.flow-ok active %d" % active)
        if self.flow == "stopping" and active == 0:
            self.flow = "off"
            self.conn.tick_at = time.monotonic() + FLOW_OFF_S
        elif self.flow == "resuming" and active == 1:
            self.flow = "on"
        else:
            check(False, "a channel.flow-ok active %d unasked for (state %s)" % (active, self.flow))

    def flush_published(self):
        if self.published:
            log("client published %d messages (first on channel %d)" %
                (self.published, self.publish_channel))
            self.published = 0

    def run(self):
        """Serve frames until the client closes or goes."""
        while True:
            try:
                ftype, channel, payload, size = self.conn.read_frame()
            except Tick:
                self.flow_tick()
                continue
            self.largest = max(self.largest, size)
            if size > self.frame_max:
                check(False, "client frame of %d bytes (type %d) exceeds frame_max %d" %
                      (size, ftype, self.frame_max))
            if ftype == 8:
                continue
            if ftype == 2:
                r = Reader(payload)
                r.short(), r.short()
                self.pending[channel] = [r.longlong(), 0, 0]
                continue
            if ftype == 3:
                p = self.pending.get(channel)
                if p is None:
                    check(False, "client body frame on channel %d without a header" % channel)
                    continue
                p[1] += len(payload)
                p[2] += 1
                if p[1] >= p[0]:
                    if len(self.bodies) < 3:  # the first few only: a test may send millions
                        log("client message: body size %d in %d body frames" % (p[0], p[2]))
                    self.bodies.append(tuple(p[:2]))
                    del self.pending[channel]
                continue
            if ftype != 1:
                check(False, "client frame of unknown type %d" % ftype)
                continue
            r = Reader(payload)
            cm = (r.short(), r.short())
            if cm == (60, 40):
                if self.publish_channel is None:
                    self.publish_channel = channel
                self.published += 1
                if self.flow == "off":
                    self.off_publishes += 1
                if self.case == "channel-flow" and not self.misbehaved and \
                        self.published >= self.after_publishes:
                    log("channel.flow active=false after %d basic.publish" % self.published)
                    self.conn.send(method(channel, 20, 20, struct.pack(">B", 0)))
                    self.misbehaved = True
                    self.flow = "stopping"
                    continue
                if self.after_publishes and not self.misbehaved and \
                        self.published >= self.after_publishes:
                    log("misbehaving after %d basic.publish" % self.published)
                    self.conn.send(misbehaviour(self.case))
                    self.misbehaved = True
                continue
            if cm == (20, 20):
                # salvo's checkpoints, about once a millisecond: answered, not logged
                self.flows += 1
                if self.case != "drop-at-channel-close":
                    self.conn.send(method(channel, 20, 21, struct.pack(">B", r.octet())))
                continue
            if cm == (20, 21):
                # the client's answer to our channel.flow (channel-flow)
                self.flow_ok(r.octet())
                continue
            self.flush_published()
            if cm == (20, 10):
                log("client channel.open %d" % channel)
                if self.case == "truncated-open-ok":
                    self.conn.send(method(channel, 20, 11))
                    self.misbehaved = True
                    continue
                out = method(channel, 20, 11, longstr(""))
                if not self.misbehaved and not self.after_publishes:
                    out += misbehaviour(self.case)
                    self.misbehaved = True
                self.conn.send(out)
            elif cm == (85, 10):
                log("client confirm.select %d" % channel)
                self.conn.send(method(channel, 85, 11))
            elif cm == (20, 40):
                code = r.short()
                log("client channel.close %d %d '%s'" % (channel, code, esc(r.shortstr())))
                if self.case == "drop-at-channel-close":
                    log("resetting the connection")
                    self.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                              struct.pack("ii", 1, 0))
                    raise ClientGone("reset by the broker")
                self.conn.send(method(channel, 20, 41))
            elif cm == (10, 50):
                code = r.short()
                text = r.shortstr()
                class_id, method_id = r.short(), r.short()
                log("client connection.close %d '%s' class %d method %d" %
                    (code, esc(text), class_id, method_id))
                self.conn.send(method(0, 10, 51))
            elif cm == (10, 51):
                log("client connection.close-ok")
            else:
                log("client %s on channel %d" % (name(cm), channel))


def main():
    global failed
    args = sys.argv[1:]
    after_publishes = 0
    if len(args) == 4 and args[2] == "--after-publishes" and args[3].isdigit():
        after_publishes = int(args[3])
        args = args[:2]
    if len(args) != 2 or args[0] not in CASES:
        sys.stderr.write("usage: hostile_broker.py CASE PORT_FILE [--after-publishes N]\n"
                         "cases: %s\n" % ", ".join(CASES))
        return 2
    case, port_file = args
    frame_max = CASES[case].get("frame_max", 131072)
    # The last resort if anything blocks outside the socket deadlines.
    signal.signal(signal.SIGALRM, lambda *_: (log("timeout: gave up (alarm)"), os._exit(1)))
    signal.alarm(int(GIVE_UP_S) + 2)
    deadline = time.monotonic() + GIVE_UP_S

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % lsock.getsockname()[1])
    os.rename(port_file + ".tmp", port_file)
    log("listening on 127.0.0.1:%d, case %s, frame_max %d" %
        (lsock.getsockname()[1], case, frame_max))
    lsock.settimeout(GIVE_UP_S)
    try:
        sock, _ = lsock.accept()
    except socket.timeout:
        log("timeout: no client connected")
        return 1
    lsock.close()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Conn(sock, deadline)
    session = None
    try:
        tune = handshake(conn, frame_max)
        if case == "small-frame-max":
            check(tune[1] == frame_max, "client tune-ok frame_max %d == %d" % (tune[1], frame_max))
        session = Session(conn, case, frame_max, after_publishes)
        session.run()
    except ClientGone as e:
        if session:
            session.flush_published()
        log(str(e))
    except socket.timeout:
        if session:
            session.flush_published()
        log("timeout: client still connected after %.0f s" % GIVE_UP_S)
        failed = True
    finally:
        sock.close()
    if session and session.flows:
        log("client sent %d channel.flow (%s)" % (session.flows, "unanswered"
            if case == "drop-at-channel-close" else "answered with flow-ok"))
    if session and case == "channel-flow":
        check(session.flow == "on", "flow on again at the end (%s)" % session.flow)
    if session and case == "small-frame-max":
        check(session.largest <= frame_max,
              "largest client frame %d bytes <= %d" % (session.largest, frame_max))
        check(not session.pending, "no message left incomplete (%r)" % session.pending)
        check(len(session.bodies) == 1, "%d message(s) received" % len(session.bodies))
        for declared, received in session.bodies:
            check(declared == 200000, "content header body size %d == 200000" % declared)
            check(received == declared, "body frames add up to %d == %d" % (received, declared))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
