# SPDX-License-Identifier: MIT
"""A TCP proxy for the chaos soak that can cut or stall every connection it carries.

Each listener accepts on 127.0.0.1:LISTEN and forwards to 127.0.0.1:TARGET, one thread per
direction of each connection. A connection whose target refuses is closed at once, so a
client sees the end of its connection and tries its next endpoint.

  cut()      closes every connection carried now, both sides (the client sees EOF or a
             reset, the broker a closed socket); the listeners go on accepting.
  stall(s)   stops forwarding, in both directions, on every connection carried now, for s
             seconds, without closing anything: only heartbeats notice. Connections
             accepted meanwhile are not stalled. After s seconds the stalled ones forward
             again (by then the peers have usually given up on them).

Used as a module by soak.py; run alone, it proxies LISTEN:TARGET pairs and reads commands
on stdin ("cut", "stall SECONDS", "count"):

  python3 tests/soak/proxy.py 5801:5791 5802:5792
"""
import socket
import sys
import threading


class Conn:
    def __init__(self, client, upstream):
        self.client = client
        self.upstream = upstream
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = False
        self.lock = threading.Lock()
        self.stalled_by = 0  # the stall (Proxy.stalls) that holds it, under Proxy.lock

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        self.flowing.set()  # a stalled pump wakes and finds the sockets closed
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def pump(self, src, dst):
        try:
            while not self.closed:
                self.flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                # Data read just before a stall waits with the rest.
                self.flowing.wait()
                if self.closed:
                    break
                dst.sendall(data)
        except OSError:
            pass
        self.close()


class Proxy:
    def __init__(self, pairs):
        """pairs: [(listen_port, target_port)], every socket on 127.0.0.1; a listen port
        of 0 takes one the kernel chooses (self.ports lists those listened on)."""
        self.lock = threading.Lock()
        self.ports = []
        self.conns = set()
        self.accepted = 0
        self.stalls = 0
        self.listeners = []
        for listen, target in pairs:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", listen))
            s.listen(64)
            self.ports.append(s.getsockname()[1])
            self.listeners.append(s)
            threading.Thread(target=self._accept, args=(s, target), daemon=True).start()

    def _accept(self, listener, target):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            try:
                upstream = socket.create_connection(("127.0.0.1", target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = Conn(client, upstream)
            with self.lock:
                self.conns = {x for x in self.conns if not x.closed}
                self.conns.add(c)
                self.accepted += 1
            threading.Thread(target=c.pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=c.pump, args=(upstream, client), daemon=True).start()

    def _live(self):
        with self.lock:
            return [c for c in self.conns if not c.closed]

    def cut(self):
        """Close every connection now; returns how many."""
        live = self._live()
        for c in live:
            c.close()
        return len(live)

    def stall(self, seconds):
        """Stop forwarding on every connection now, for seconds; returns how many."""
        live = self._live()
        with self.lock:
            self.stalls += 1
            mine = self.stalls
            for c in live:
                c.stalled_by = mine
                c.flowing.clear()

        def resume():
            # A later stall of the same connection is that stall's to end.
            with self.lock:
                for c in live:
                    if c.stalled_by == mine:
                        c.flowing.set()

        t = threading.Timer(seconds, resume)
        t.daemon = True
        t.start()
        return len(live)

    def count(self):
        return len(self._live())

    def stop(self):
        for s in self.listeners:
            s.close()
        self.cut()


def main(argv):
    pairs = []
    for a in argv:
        listen, _, target = a.partition(":")
        pairs.append((int(listen), int(target)))
    if not pairs:
        print(__doc__, file=sys.stderr)
        return 2
    p = Proxy(pairs)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["cut"]:
            print("cut", p.cut(), flush=True)
        elif words[:1] == ["stall"] and len(words) == 2:
            print("stalled", p.stall(float(words[1])), flush=True)
        elif words[:1] == ["count"]:
            print("connections", p.count(), flush=True)
        elif words:
            print("unknown command:", line.strip(), file=sys.stderr, flush=True)
    p.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
