"""Helpers for the salvo-sink tests: start a sink of one's own and stop it by PID, and
speak raw AMQP 0-9-1 frames to it.

Every sink listens on 127.0.0.1 with an ephemeral port (--listen 127.0.0.1:0), which it
writes to a port file in a private temporary directory once it is listening.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE

CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN, CHANNEL_OPEN_OK = (20, 10), (20, 11)
CHANNEL_CLOSE, CHANNEL_CLOSE_OK = (20, 40), (20, 41)
BASIC_PUBLISH, BASIC_ACK, BASIC_NACK = (60, 40), (60, 80), (60, 120)
CONFIRM_SELECT, CONFIRM_SELECT_OK = (85, 10), (85, 11)

# How long any single read may wait. Only a hung sink makes a test wait this long; no
# test measures time.
IO_TIMEOUT = 10


class Sink:
    """A salvo-sink process: `with Sink(exe, '--nack-every', '10') as sink: sink.port`."""

    def __init__(self, exe, *args):
        self.dir = tempfile.TemporaryDirectory(prefix="salvo-sink-test.")
        port_file = os.path.join(self.dir.name, "port")
        self.log_path = os.path.join(self.dir.name, "log")
        self.out_path = os.path.join(self.dir.name, "out")
        with open(self.log_path, "w") as log, open(self.out_path, "w") as out:
            self.proc = subprocess.Popen(
                [exe, "--listen", "127.0.0.1:0", "--port-file", port_file, *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=log)
        deadline = time.monotonic() + IO_TIMEOUT
        while not os.path.exists(port_file):
            if self.proc.poll() is not None:
                raise RuntimeError("salvo-sink exited with %d:\n%s" % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("salvo-sink did not write its port file")
            time.sleep(0.01)
        with open(port_file) as f:
            self.port = int(f.read())

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM to our own child by its PID; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(IO_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def totals(self):
        """Stop a sink started with --json and return the totals it printed at exit."""
        status = self.stop()
        check(status == 0, "salvo-sink exited with status %d" % status)
        with open(self.out_path) as f:
            lines = f.read().splitlines()
        check(len(lines) == 1, "salvo-sink --json printed %d lines: %r" % (len(lines), lines))
        return json.loads(lines[0])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        status = self.stop()
        sys.stderr.write(self.log())
        self.dir.cleanup()
        if exc[0] is None and status != 0:
            raise AssertionError("salvo-sink exited with status %d" % status)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


# Encoding.

def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return bytes([len(b)]) + b


def longstr(b):
    return struct.pack(">I", len(b)) + b


EMPTY_TABLE = struct.pack(">I", 0)


def frame(ftype, channel, payload, end=FRAME_END):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([end])


def method(channel, cm, args=b""):
    return frame(FRAME_METHOD, channel, struct.pack(">HH", *cm) + args)


def publish(channel, routing_key, body, exchange="", mandatory=False, body_size=None,
            props=(0, b""), frame_body=None):
    """basic.publish, its content header and one body frame (none for an empty body).
    props: (property flags, encoded properties); frame_body: the largest body frame, to
    split the body into several."""
    m = method(channel, BASIC_PUBLISH,
               struct.pack(">H", 0) + shortstr(exchange) + shortstr(routing_key)
               + bytes([1 if mandatory else 0]))
    size = len(body) if body_size is None else body_size
    h = frame(FRAME_HEADER, channel, struct.pack(">HHQH", 60, 0, size, props[0]) + props[1])
    step = frame_body or max(len(body), 1)
    return m + h + b"".join(frame(FRAME_BODY, channel, body[i:i + step])
                            for i in range(0, len(body), step))


# Decoding.

def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def read_frame(s):
    """(type, channel, payload); heartbeats included."""
    ftype, channel, size = struct.unpack(">BHI", recv_exact(s, 7))
    payload = recv_exact(s, size + 1)
    check(payload[-1] == FRAME_END, "frame end octet 0x%02x" % payload[-1])
    return ftype, channel, payload[:-1]


def read_method(s, skip_heartbeats=True):
    """(channel, (class, method), arguments) of the next method frame."""
    while True:
        ftype, channel, payload = read_frame(s)
        if ftype == FRAME_HEARTBEAT and skip_heartbeats:
            continue
        check(ftype == FRAME_METHOD, "expected a method frame, got type %d" % ftype)
        return channel, struct.unpack(">HH", payload[:4]), payload[4:]


def parse_close(args):
    """(reply_code, reply_text, class_id, method_id) of connection.close / channel.close."""
    code, n = struct.unpack(">HB", args[:3])
    text = args[3:3 + n].decode()
    class_id, method_id = struct.unpack(">HH", args[3 + n:7 + n])
    return code, text, class_id, method_id


def parse_ack(args):
    """(delivery_tag, multiple) of basic.ack or basic.nack."""
    tag, bits = struct.unpack(">QB", args[:9])
    return tag, bool(bits & 1)


def expect_eof(s):
    """The sink hangs up: EOF (or a reset) with nothing else before it."""
    try:
        data = s.recv(65536)
    except ConnectionResetError:
        return
    check(data == b"", "expected EOF, got %r" % data[:64])


# A client.

def connect(port, frame_max=131072, heartbeat=0, user="guest", password="guest"):
    """A socket through the handshake (connection.open-ok); tune's values come back too."""
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.sendall(PROTOCOL_HEADER)
    _, cm, _ = read_method(s)
    check(cm == (10, 10), "expected connection.start, got %r" % (cm,))
    response = b"\x00" + user.encode() + b"\x00" + password.encode()
    s.sendall(method(0, (10, 11), EMPTY_TABLE + shortstr("PLAIN") + longstr(response)
                     + shortstr("en_US")))
    _, cm, args = read_method(s)
    check(cm == (10, 30), "expected connection.tune, got %r" % (cm,))
    channel_max, server_frame_max, _ = struct.unpack(">HIH", args)
    s.sendall(method(0, (10, 31), struct.pack(">HIH", channel_max, frame_max, heartbeat))
              + method(0, (10, 40), shortstr("/") + shortstr("") + b"\x00"))
    _, cm, _ = read_method(s)
    check(cm == (10, 41), "expected connection.open-ok, got %r" % (cm,))
    return s


def open_channel(s, channel, confirm=False):
    s.sendall(method(channel, CHANNEL_OPEN, shortstr("")))
    ch, cm, _ = read_method(s)
    check((ch, cm) == (channel, CHANNEL_OPEN_OK), "expected channel.open-ok, got %r" % (cm,))
    if confirm:
        s.sendall(method(channel, CONFIRM_SELECT, b"\x00"))
        ch, cm, _ = read_method(s)
        check((ch, cm) == (channel, CONFIRM_SELECT_OK), "expected confirm.select-ok, got %r" % (cm,))


def expect_connection_close(s, code):
    """Read up to the sink's connection.close, check its code, answer close-ok, and see the
    sink hang up. Returns the reply text."""
    while True:
        ch, cm, args = read_method(s)
        if cm == CONNECTION_CLOSE:
            break
    got, text, _, _ = parse_close(args)
    check(ch == 0, "connection.close on channel %d" % ch)
    check(got == code, "expected connection.close %d, got %d %r" % (code, got, text))
    s.sendall(method(0, CONNECTION_CLOSE_OK))
    expect_eof(s)
    return text


def _hung(signum, frame):
    raise AssertionError("no progress in %d s: a reply the client waits for never came"
                         % CASE_TIMEOUT)


# A sink that never answers leaves pika waiting forever; this turns that into a failure
# that says so, before meson's own timeout.
CASE_TIMEOUT = 45


def main(cases):
    """Run the case named argv[1] with the sink executable argv[2]; with --list, print the
    case names, one per line (tests/list_cases.py reads the same dict from the source)."""
    if sys.argv[1:] == ["--list"]:
        print("\n".join(cases))
        return
    name, exe = sys.argv[1], sys.argv[2]
    if name not in cases:
        sys.stderr.write("no test case named %r\n" % name)
        sys.exit(1)
    signal.signal(signal.SIGALRM, _hung)
    signal.alarm(CASE_TIMEOUT)
    cases[name](exe)
