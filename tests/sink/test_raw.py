#!/usr/bin/python3
"""salvo-sink against raw bytes: protocol violations, each answered with connection.close
and the right reply code while other connections go on, and the faults it injects as they
look on the wire.

    test_raw.py CASE SALVO_SINK [SINK_LOAD]

Each case starts its own sink. Exit 0 pass, 1 fail.
"""
import os
import socket
import struct
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sinktest import (BASIC_ACK, BASIC_NACK, CHANNEL_CLOSE, CHANNEL_CLOSE_OK, FRAME_BODY,  # noqa: E402
                      FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, IO_TIMEOUT,
                      PROTOCOL_HEADER, Sink, check, connect, expect_connection_close,
                      expect_eof, frame, main, method, open_channel, parse_ack, parse_close,
                      publish, read_frame, read_method, shortstr)


def acked_to(s, channel, tag):
    """Read multiple acks (one per read batch of the sink) until one reaches tag; it must
    be exactly tag."""
    last = 0
    while last < tag:
        ch, cm, args = read_method(s)
        check(ch == channel and cm == BASIC_ACK, "expected basic.ack, got %r on %d" % (cm, ch))
        last, multiple = parse_ack(args)
        check(multiple, "a single ack in default mode")
    check(last == tag, "acked up to %d, expected %d" % (last, tag))


def publish_confirmed(s, channel, n, first_tag=1, key="bystander"):
    """n publishes in one write, confirmed up to the last one's tag."""
    s.sendall(b"".join(publish(channel, key, b"x" * 100) for _ in range(n)))
    acked_to(s, channel, first_tag + n - 1)


def violation(code, bad_bytes, handshake=True, channel_open=True, frame_max=131072):
    """A case: a bystander connection publishes, another connection sends bad_bytes and
    gets connection.close with code, and the bystander and a new connection still work."""
    def case(exe):
        with Sink(exe) as sink:
            bystander = connect(sink.port)
            open_channel(bystander, 1, confirm=True)
            publish_confirmed(bystander, 1, 10)

            s = connect(sink.port, frame_max=frame_max) if handshake else \
                socket.create_connection(("127.0.0.1", sink.port), timeout=IO_TIMEOUT)
            if handshake and channel_open:
                open_channel(s, 1)
            s.sendall(bad_bytes)
            text = expect_connection_close(s, code)
            check(text, "connection.close without a reply text")
            s.close()

            publish_confirmed(bystander, 1, 10, first_tag=11)
            fresh = connect(sink.port)
            open_channel(fresh, 1, confirm=True)
            publish_confirmed(fresh, 1, 3)
            for c in (bystander, fresh):
                c.sendall(method(0, (10, 50), struct.pack(">H", 200) + shortstr("bye")
                                 + struct.pack(">HH", 0, 0)))
                _, cm, _ = read_method(c)
                check(cm == (10, 51), "expected connection.close-ok, got %r" % (cm,))
                expect_eof(c)
            check(sink.alive(), "the sink died")
    return case


def bad_protocol_header(exe):
    """A wrong version gets our header back, then EOF; so does a non-AMQP greeting."""
    with Sink(exe) as sink:
        for greeting in (b"AMQP\x00\x00\x09\x00", b"AMQP\x01\x01\x00\x09", b"GET / HTTP/1.1\r\n\r\n"):
            s = socket.create_connection(("127.0.0.1", sink.port), timeout=IO_TIMEOUT)
            s.sendall(greeting)
            got = b""
            while len(got) < 8:
                chunk = s.recv(8 - len(got))
                check(chunk, "EOF before the protocol header")
                got += chunk
            check(got == PROTOCOL_HEADER, "answered %r" % got)
            expect_eof(s)
            s.close()
        s = connect(sink.port)
        open_channel(s, 1, confirm=True)
        publish_confirmed(s, 1, 1)


def stall_after(exe):
    """--stall-after 5: messages 1-5 are acked, then nothing is read: a writer blocks."""
    with Sink(exe, "--stall-after", "5") as sink:
        s = connect(sink.port)
        open_channel(s, 1, confirm=True)
        s.sendall(b"".join(publish(1, "k", b"x" * 100) for _ in range(8)))
        acked_to(s, 1, 5)
        # Keep writing until the kernel's buffers on both sides are full: only a peer
        # that stopped reading makes send() refuse. 256 MiB is far beyond those buffers.
        s.setblocking(False)
        chunk = publish(1, "k", b"y" * 60000) * 16
        written = 0
        try:
            while written < 256 << 20:
                written += s.send(chunk)
            raise AssertionError("the sink read 256 MiB after --stall-after")
        except BlockingIOError:
            pass
        # Whatever the sink sent would be here by now: no ack past 5, no close.
        try:
            data = s.recv(65536)
            raise AssertionError("the stalled sink sent %r" % data[:64])
        except BlockingIOError:
            pass
        s.setblocking(True)
        check(sink.alive(), "the sink died")
        # The connection is still open: no close frame, no EOF, and others are served.
        other = connect(sink.port)
        open_channel(other, 1, confirm=True)
        publish_confirmed(other, 1, 3)
        s.close()


def drop_after(exe):
    """--drop-after 3: the connection is reset, after no more than 3 acks."""
    with Sink(exe, "--drop-after", "3") as sink:
        s = connect(sink.port)
        open_channel(s, 1, confirm=True)
        s.sendall(b"".join(publish(1, "k", b"x") for _ in range(5)))
        try:
            while True:
                ftype, ch, payload = read_frame(s)
                check(ftype == FRAME_METHOD and struct.unpack(">HH", payload[:4]) == BASIC_ACK,
                      "expected nothing but acks before the reset")
        except ConnectionResetError:
            pass
        except EOFError:
            raise AssertionError("a FIN, not a reset")


def ack_unknown_tag(exe):
    """--ack-unknown-tag: the first confirms of a channel come with an ack for a tag never
    published; later ones do not."""
    with Sink(exe, "--ack-unknown-tag") as sink:
        s = connect(sink.port)
        open_channel(s, 1, confirm=True)
        s.sendall(publish(1, "k", b"x"))
        acks = [parse_ack(read_method(s)[2]) for _ in range(2)]
        check(acks[0] == (1, True), "first ack %r" % (acks[0],))
        check(acks[1][0] > 1 << 32 and not acks[1][1], "unknown tag ack %r" % (acks[1],))
        publish_confirmed(s, 1, 1, first_tag=2)  # fails on a second unknown-tag ack


def nack_out_of_order(exe):
    """--nack-every 4 --ack-out-of-order: each tag of a batch settled once, highest first,
    nacks for multiples of 4."""
    with Sink(exe, "--nack-every", "4", "--ack-out-of-order") as sink:
        s = connect(sink.port)
        open_channel(s, 1, confirm=True)
        s.sendall(b"".join(publish(1, "k", b"x") for _ in range(10)))
        got = []
        while len(got) < 10:
            ch, cm, args = read_method(s)
            tag, multiple = parse_ack(args)
            check(not multiple, "a multiple settle in out-of-order mode")
            got.append((tag, cm == BASIC_NACK))
        tags = [t for t, _ in got]
        check(sorted(tags) == list(range(1, 11)), "tags %r" % got)
        check(all(nack == (t % 4 == 0) for t, nack in got), "nacks %r" % got)
        # Each read batch is settled highest tag first, batches in order: descending runs
        # of consecutive tags. Ten small publishes in one write make one batch in
        # practice, but the check holds however TCP splits them.
        runs, run = [], [tags[0]]
        for t in tags[1:]:
            if t == run[-1] - 1:
                run.append(t)
            else:
                runs.append(run)
                run = [t]
        runs.append(run)
        check(all(a[0] < b[-1] for a, b in zip(runs, runs[1:])), "order %r" % tags)
        check(any(len(r) > 1 for r in runs), "not out of order: %r" % tags)


def nack_multiple(exe):
    """--nack-every 3 with ten publishes in one write: nacks for 3, 6, 9 before one
    multiple ack of 10, which settles the rest."""
    with Sink(exe, "--nack-every", "3") as sink:
        s = connect(sink.port)
        open_channel(s, 1, confirm=True)
        s.sendall(b"".join(publish(1, "k", b"x") for _ in range(10)))
        settled, nacked = 0, []
        while settled < 10:
            ch, cm, args = read_method(s)
            tag, multiple = parse_ack(args)
            if cm == BASIC_NACK:
                check(not multiple and tag % 3 == 0 and tag > settled, "nack %d" % tag)
                nacked.append(tag)
            else:
                check(cm == BASIC_ACK and multiple and tag % 3 != 0, "ack %d" % tag)
                check(set(range(3, tag + 1, 3)) <= set(nacked), "an ack before the nacks it covers")
                settled = tag
        check(nacked == [3, 6, 9], "nacked %r" % nacked)


def nowait(exe):
    """Methods with nowait set get no reply: the next frame answers the next method."""
    with Sink(exe) as sink:
        s = connect(sink.port)
        open_channel(s, 1)
        ticket = struct.pack(">H", 0)
        no_args = struct.pack(">I", 0)
        s.sendall(method(1, (40, 10), ticket + shortstr("x") + shortstr("direct") + b"\x10" + no_args)
                  + method(1, (50, 10), ticket + shortstr("q") + b"\x10" + no_args)
                  + method(1, (50, 30), ticket + shortstr("q") + b"\x01")
                  + method(1, (85, 10), b"\x01")
                  + method(1, (50, 10), ticket + shortstr("q") + b"\x01" + no_args))
        ch, cm, args = read_method(s)
        check(cm == (50, 11), "expected queue.declare-ok for the passive declare, got %r" % (cm,))
        # confirm.select nowait took effect: the next publish is acked.
        publish_confirmed(s, 1, 1)


def counts_in_batch(exe):
    """Publishes and queue methods in one write: each queue method counts the publishes
    before it, not only those of earlier read batches."""
    with Sink(exe) as sink:
        s = connect(sink.port)
        open_channel(s, 1)
        open_channel(s, 2)
        ticket = struct.pack(">H", 0)
        declare = method(2, (50, 10), ticket + shortstr("q") + b"\x01" + struct.pack(">I", 0))
        purge = method(2, (50, 30), ticket + shortstr("q") + b"\x00")
        s.sendall(b"".join(publish(1, "q", b"x") for _ in range(5)) + declare + purge
                  + b"".join(publish(1, "q", b"x") for _ in range(3)) + publish(1, "other", b"x")
                  + publish(1, "q", b"") + purge)
        got = []
        for cm in ((50, 11), (50, 31), (50, 31)):
            ch, got_cm, args = read_method(s)
            check((ch, got_cm) == (2, cm), "expected %r on 2, got %r on %d" % (cm, got_cm, ch))
            n = len(args)
            got.append(struct.unpack(">I", args[n - 8:n - 4] if cm == (50, 11) else args[:4])[0])
        check(got == [5, 5, 4], "declare, purge, purge counted %r" % got)


def channel_errors(exe):
    """A channel error closes that channel only: basic.ack of a tag never delivered is 406;
    the channel then reopens; tx.commit on a non-transactional channel is 406 too."""
    with Sink(exe) as sink:
        s = connect(sink.port)
        open_channel(s, 1)
        open_channel(s, 2, confirm=True)
        for bad in (method(1, BASIC_ACK, struct.pack(">QB", 7, 0)), method(1, (90, 20))):
            s.sendall(bad + publish(1, "discarded while closing", b"x"))
            ch, cm, args = read_method(s)
            check((ch, cm) == (1, CHANNEL_CLOSE), "expected channel.close on 1, got %r" % (cm,))
            check(parse_close(args)[0] == 406, "channel.close %r" % (parse_close(args),))
            s.sendall(method(1, CHANNEL_CLOSE_OK))
            open_channel(s, 1)
        # Client-initiated close of a channel in confirm mode.
        publish_confirmed(s, 2, 2)
        s.sendall(method(2, CHANNEL_CLOSE, struct.pack(">H", 200) + shortstr("bye")
                         + struct.pack(">HH", 0, 0)))
        check(read_method(s)[:2] == (2, CHANNEL_CLOSE_OK), "expected channel.close-ok")


def heartbeat(exe):
    """With heartbeat 1 the sink beats on a silent connection, and hangs up after two
    silent intervals of ours."""
    with Sink(exe, "--heartbeat", "1") as sink:
        s = connect(sink.port, heartbeat=1)
        check(read_frame(s)[0] == FRAME_HEARTBEAT, "expected a heartbeat")
        try:
            while True:
                ftype, _, _ = read_frame(s)
                check(ftype == FRAME_HEARTBEAT, "only heartbeats before the hang-up")
        except EOFError:
            pass
        check(sink.alive(), "the sink died")


def load(*sink_args):
    """sink-load: 300,000 messages of 100 bytes in confirm mode, each acked exactly once
    and counted (--check)."""
    def case(exe):
        loader = sys.argv[3]
        with Sink(exe, *sink_args) as sink:
            out = subprocess.run([loader, "--port", str(sink.port), "--count", "300000",
                                  "--size", "100", "--confirm", "--check"],
                                 stdout=subprocess.PIPE, universal_newlines=True)
            sys.stdout.write(out.stdout)
            check(out.returncode == 0, "sink-load exited with %d" % out.returncode)
    return case


def header(channel, body_size):
    return frame(FRAME_HEADER, channel, struct.pack(">HHQH", 60, 0, body_size, 0))


if __name__ == "__main__":
    main({
        "bad-protocol-header": bad_protocol_header,
        # The size is checked from the 7-byte header alone: no payload is sent.
        "frame-too-large": violation(501, struct.pack(">BHI", FRAME_METHOD, 1, 4096 - 7),
                                     frame_max=4096),
        "frame-end": violation(501, frame(FRAME_METHOD, 1, struct.pack(">HH", 50, 10)
                                          + b"\x00" * 8, end=0x00)),
        "frame-type": violation(501, frame(7, 1, b"")),
        "body-too-long": violation(505, publish(1, "k", b"x" * 11, body_size=10)),
        "body-too-short": violation(505, publish(1, "k", b"x" * 5, body_size=10)
                                    + publish(1, "k", b"x")),
        "body-without-header": violation(505, frame(FRAME_BODY, 1, b"x")),
        "header-on-channel-0": violation(505, header(0, 1)),
        "method-syntax": violation(502, method(1, (60, 40), struct.pack(">H", 0) + b"\x09ab")),
        "unopened-channel": violation(504, publish(3, "k", b"x")),
        "above-channel-max": violation(504, method(4000, (20, 10), shortstr(""))),
        "channel-open-twice": violation(504, method(1, (20, 10), shortstr(""))),
        "server-method": violation(503, method(1, (60, 60), shortstr("ctag") + struct.pack(">QB", 1, 0)
                                               + shortstr("") + shortstr("k"))),
        "unknown-method": violation(540, method(1, (60, 999))),
        "handshake-out-of-order": violation(503, PROTOCOL_HEADER + method(0, (10, 40), shortstr("/")
                                                                          + shortstr("") + b"\x00"),
                                            handshake=False),
        "stall-after": stall_after,
        "drop-after": drop_after,
        "ack-unknown-tag": ack_unknown_tag,
        "nack-multiple": nack_multiple,
        "nack-out-of-order": nack_out_of_order,
        "nowait": nowait,
        "channel-errors": channel_errors,
        "counts-in-batch": counts_in_batch,
        "heartbeat": heartbeat,
        "load": load(),
        "load-out-of-order": load("--ack-out-of-order"),
        "load-ack-delay": load("--ack-delay-ms", "20"),
    })
