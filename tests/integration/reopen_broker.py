#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A fake broker that holds topology recovery's channel.open (stdlib only).

    reopen_broker.py PORT_FILE DELAY_S

For test_topology's cases "close during reopen" and "destroy during reopen": listens on
127.0.0.1 on a port the kernel chooses (written to PORT_FILE.tmp, then renamed), and
serves two connections with hostile_broker.py's handshake. The first answers channel.open,
basic.qos and basic.consume, then closes the connection with 320 CONNECTION_FORCED right
after the first consume-ok: the client reconnects. The second delays its first
channel.open-ok by DELAY_S, the window in which the client's channel is being reopened
by topology recovery, and answers what RabbitMQ would (consume-ok, cancel-ok with the
tag, close-ok). Every method the client sends is logged on stdout as

    conn N ch C NAME [TAG]

and the program exits 0 once the second connection has ended (1 on a timeout).
"""
import os
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostile_broker as hb  # noqa: E402

GIVE_UP_S = 60


def serve(sock, n, delay):
    conn = hb.Conn(sock, time.monotonic() + GIVE_UP_S)
    delayed = False
    tags = 0
    try:
        hb.handshake(conn, 131072)
        while True:
            ftype, ch, payload, _ = conn.read_frame()
            if ftype != 1:
                continue  # heartbeats; content of a publish
            cm = struct.unpack(">HH", payload[:4])
            r = hb.Reader(payload[4:])
            tag = b""
            if cm in ((60, 20), (60, 30)):
                if cm == (60, 20):
                    r.short()
                    r.shortstr()  # the queue
                tag = r.shortstr()
            print("conn %d ch %d %s %s" % (n, ch, hb.name(cm), hb.esc(tag)), flush=True)
            if cm == (20, 10):  # channel.open
                if n == 2 and not delayed:
                    delayed = True
                    time.sleep(delay)
                conn.send(hb.method(ch, 20, 11, hb.longstr(b"")))
            elif cm == (20, 40):  # channel.close
                conn.send(hb.method(ch, 20, 41))
            elif cm == (60, 10):  # basic.qos
                conn.send(hb.method(ch, 60, 11))
            elif cm == (60, 20):  # basic.consume
                if not tag:
                    tags += 1
                    tag = b"amq.ctag-%d" % tags
                conn.send(hb.method(ch, 60, 21, hb.shortstr(tag)))
                if n == 1:
                    conn.send(hb.method(0, 10, 50, struct.pack(">H", 320) +
                                        hb.shortstr(b"CONNECTION_FORCED - reopen_broker") +
                                        struct.pack(">HH", 0, 0)))
            elif cm == (60, 30):  # basic.cancel: RabbitMQ answers an unknown tag too
                conn.send(hb.method(ch, 60, 31, hb.shortstr(tag)))
            elif cm == (10, 50):  # connection.close
                conn.send(hb.method(0, 10, 51))
                break
            elif cm == (10, 51):  # close-ok of ours
                break
    except (hb.ClientGone, OSError) as e:
        print("conn %d ended: %s" % (n, e), flush=True)
    sock.close()


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: reopen_broker.py PORT_FILE DELAY_S\n")
        return 2
    port_file, delay = sys.argv[1], float(sys.argv[2])
    signal.signal(signal.SIGALRM, lambda *_: (print("timeout", flush=True), os._exit(1)))
    signal.alarm(GIVE_UP_S)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(2)
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % lsock.getsockname()[1])
    os.rename(port_file + ".tmp", port_file)
    for n in (1, 2):
        sock, _ = lsock.accept()
        serve(sock, n, delay)
    return 0


if __name__ == "__main__":
    sys.exit(main())
