# SPDX-License-Identifier: MIT
"""The chaos soak's driver (scripts/soak.sh runs it): faults against a running cluster
while soak_client publishes and consumes through proxy.py, then the checks.

  soak.py --minutes M --client PATH --root REPO --proxy-port BASE [--seed N] [--json FILE]
          NODE_URI...

NODE_URI i (1-based) is node i of a cluster that `scripts/rabbitmq.sh cluster` manages
(SALVO_TEST_CLUSTER_PORT in the environment); the proxy listens on BASE+i-1 for it. The
client's endpoints are the proxy's ports. One fault every 5-15 s, drawn from the seed:

  kill       kill -9 of a node (cluster kill I), 2 s, then cluster restart I
  close      rabbitmqctl close_connection of one of the client's connections
  cut        every connection through the proxy closed, both sides
  stall      every connection through the proxy silent for STALL_S (longer than the
             heartbeat timeout: 2 x heartbeat)
  alarm      set_vm_memory_high_watermark absolute 1 on a node for ALARM_S, then 0.4

After M minutes the client stops producing, drains and prints its result; the checks are
printed (and written as JSON with --json) and the exit status is 1 if any fails.
"""
import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy  # noqa: E402

HEARTBEAT = 2  # seconds; salvo declares the connection dead after 2 x heartbeat
STALL_S = 8.0
ALARM_S = 4.0
KILL_DOWN_S = 2.0
KINDS = ("kill", "close", "cut", "stall", "alarm")
WARMUP_S = 10  # the least left out of the resource windows: the client's first allocations
CONNECTIONS = 3


_log_lock = threading.Lock()


def log(*a):
    # One writer at a time: the client's reader thread logs too.
    with _log_lock:
        print(*a, flush=True)


class Client:
    """soak_client as a child process; its lines parsed on a thread of their own."""

    def __init__(self, cmd, t0):
        self.t0 = t0
        self.progress = []  # (t, fields)
        self.samples = []
        self.events = []
        self.result = None
        self.stopped_at = None
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            t = time.monotonic() - self.t0
            kind, _, rest = line.partition(" ")
            if kind == "result":
                with self.lock:
                    self.result = json.loads(rest)
                continue
            fields = dict(re.findall(r"(\w+)=(\S+)", rest))
            with self.lock:
                if kind == "progress":
                    self.progress.append((t, fields))
                elif kind == "stopped":
                    self.stopped_at = t
                elif kind == "sample" and self.stopped_at is None:
                    self.samples.append((t, fields))
                elif kind == "event":
                    self.events.append((t, fields))
            if kind in ("progress", "sample", "event", "stopped", "drain", "conn"):
                log("  client %s" % line)

    def snapshot(self):
        with self.lock:
            return list(self.progress)

    def stop(self, timeout):
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
        except OSError:
            pass
        self.reader.join(timeout)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Cluster:
    def __init__(self, root, nodes):
        self.script = os.path.join(root, "scripts", "rabbitmq.sh")
        self.nodes = nodes

    def run(self, *args, timeout=240):
        r = subprocess.run(["bash", self.script, "cluster"] + [str(a) for a in args],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("rabbitmq.sh cluster %s: exit %d: %s" %
                               (" ".join(map(str, args)), r.returncode, r.stderr.strip()[-500:]))
        return r.stdout

    def connection_pid(self, node, name):
        """The PID of the connection named name, as node lists it; None if it is not
        listed within 3 tries a second apart (the connection being replaced)."""
        for _ in range(3):
            out = self.run("ctl", node, "-q", "list_connections", "pid", "client_properties")
            for line in out.splitlines():
                if '"connection_name","%s"' % name in line:
                    return line.split("\t")[0]
            time.sleep(1)
        return None


def inject(kind, rnd, cluster, prx, clock):
    """Carries the fault out (blocking until it is over); returns (target, hit, settle):
    hit is when it took effect (clock() after the command that did it: rabbitmqctl takes a
    second or two to start), settle when the rate may count as recovered again (the end
    of an alarm; hit for the others)."""
    n = len(cluster.nodes)
    if kind == "kill":
        node = rnd.randint(1, n)
        cluster.run("kill", node)
        hit = clock()
        time.sleep(KILL_DOWN_S)
        cluster.run("restart", node)
        return "node %d" % node, hit, hit
    if kind == "close":
        conn = rnd.randrange(CONNECTIONS)
        node = rnd.randint(1, n)
        name = "soak-c%d" % conn
        pid = cluster.connection_pid(node, name)
        if pid is None:
            raise RuntimeError("connection %s not listed by node %d" % (name, node))
        cluster.run("ctl", node, "close_connection", pid, "soak fault")
        hit = clock()
        return name, hit, hit
    if kind == "cut":
        hit = clock()
        return "all (%d connections)" % prx.cut(), hit, hit
    if kind == "stall":
        hit = clock()
        count = prx.stall(STALL_S)
        time.sleep(STALL_S)
        return "all (%d connections) %.0f s" % (count, STALL_S), hit, hit
    node = rnd.randint(1, n)
    cluster.run("ctl", node, "set_vm_memory_high_watermark", "absolute", "1")
    try:
        hit = clock()
        time.sleep(ALARM_S)
    finally:
        # Also when the run is stopped meanwhile: a node left in alarm blocks every
        # publisher of a cluster that outlives the soak.
        cluster.run("ctl", node, "set_vm_memory_high_watermark", "0.4")
    return "node %d %.0f s" % (node, ALARM_S), hit, clock()


def at(progress, t, key):
    """The counter key of the last progress line at or before t (0 before the first)."""
    v = 0
    for pt, f in progress:
        if pt > t:
            break
        v = int(f[key])
    return v


def recovery(progress, fault, until):
    """Seconds from the fault's injection until the acked rate is back to half its rate
    over the 5 s before it (for faults with a rate before them), every connection is up
    and the connection closed (close) has reconnected; None if not before until."""
    t = fault["t"]
    pre = (at(progress, t, "acked") - at(progress, t - 5, "acked")) / 5.0
    settle = fault["settle"]
    rec_before = [0] * CONNECTIONS
    for pt, f in progress:
        if pt <= t:
            rec_before = [int(x) for x in f["reconnects"].split(",")]
    prev = None
    for pt, f in progress:
        if pt > until:
            break
        if prev is not None and prev[0] >= settle:
            rate = (int(f["acked"]) - int(prev[1]["acked"])) / (pt - prev[0])
            up = all(s == "up" for s in f["conns"].split(","))
            rec = [int(x) for x in f["reconnects"].split(",")]
            reconnected = True
            if fault["kind"] == "close":
                i = int(fault["target"].rsplit("c", 1)[1])
                reconnected = rec[i] > rec_before[i]
            if up and reconnected and (pre <= 0 or rate >= pre / 2):
                return pt - t, pre, pt
        if pt > t:
            prev = (pt, f)
    return None, pre, None


def within(first, last, tolerance=0.10):
    return first > 0 and abs(last - first) <= tolerance * first


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=2)
    ap.add_argument("--client", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=int, default=150)
    ap.add_argument("--json")
    ap.add_argument("nodes", nargs="+")
    a = ap.parse_args()
    # soak.sh ends the driver with SIGTERM on Ctrl-C or failure: unwind, so that the
    # finally below kills the client and closes the proxy.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    rnd = random.Random(a.seed)
    log("soak: seed %d, %g minutes, %d nodes, proxy ports %d-%d" %
        (a.seed, a.minutes, len(a.nodes), a.proxy_port, a.proxy_port + len(a.nodes) - 1))
    pairs = []
    for i, uri in enumerate(a.nodes):
        pairs.append((a.proxy_port + i, int(uri.rsplit(":", 1)[1].split("/")[0])))
    prx = proxy.Proxy(pairs)
    cluster = Cluster(a.root, a.nodes)
    # Every endpoint a whole URI with the same credentials (uri, then uri.add).
    endpoints = ["amqp://guest:guest@127.0.0.1:%d" % p for p, _ in pairs]
    t0 = time.monotonic()
    client = Client([a.client, "--connections", str(CONNECTIONS), "--rate", str(a.rate),
                     "--heartbeat", str(HEARTBEAT), "--prefix", "soak"] + endpoints, t0)
    faults = []
    errors = []  # faults that could not be injected
    end = a.minutes * 60
    try:
        next_fault = rnd.uniform(5, 15)
        deck = []
        while True:
            now = time.monotonic() - t0
            if client.proc.poll() is not None:
                raise RuntimeError("soak_client exited early (status %d)" % client.proc.returncode)
            if now >= end:
                break
            if now < next_fault:
                time.sleep(min(0.2, next_fault - now))
                continue
            # Drawn from a shuffled deck of the kinds, so that every kind comes once in
            # each five faults, in an order the seed decides.
            if not deck:
                deck = list(KINDS)
                rnd.shuffle(deck)
            kind = deck.pop()
            log("soak: t=%.1f fault %s" % (now, kind))
            f = {"kind": kind, "began": now}
            try:
                f["target"], f["t"], f["settle"] = inject(kind, rnd, cluster, prx,
                                                          lambda: time.monotonic() - t0)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                # Reported as a failed check; the run goes on with the next fault.
                log("soak: fault %s could not be injected: %s" % (kind, e))
                errors.append("%s at t=%.1f: %s" % (kind, now, e))
                next_fault = time.monotonic() - t0 + rnd.uniform(5, 15)
                continue
            f["end"] = time.monotonic() - t0
            log("soak: t=%.1f fault %s %s took effect at t=%.1f, over" %
                (f["end"], kind, f["target"], f["t"]))
            faults.append(f)
            next_fault = f["end"] + rnd.uniform(5, 15)
        log("soak: t=%.1f stopping the producers, draining" % (time.monotonic() - t0))
        client.stop(timeout=400)
    finally:
        client.kill()
        prx.stop()

    r = client.result
    progress = client.snapshot()
    checks = []

    def check(name, ok, detail):
        checks.append({"check": name, "ok": bool(ok), "detail": detail})

    if r is None:
        check("client result", False, "soak_client printed no result (exit %s)" %
              client.proc.returncode)
    else:
        missing = ", ".join("(%d, %d)" % tuple(m) for m in r["missing"])
        check("nothing confirmed lost", r["lost"] == 0,
              "lost %d of %d confirmed%s" % (r["lost"], sum(p["confirmed"] for p in r["producers"]),
                                             "; first missing (producer, sequence): " + missing
                                             if missing else ""))
        s = r["salvo"]
        check("duplicates bounded by resent", r["dup_fresh"] <= s["resent"],
              "%d duplicates not marked redelivered, %d resent by salvo; %d redelivered by "
              "the broker after a consumer's loss" % (r["dup_fresh"], s["resent"],
                                                        r["dup_redelivered"]))
        out = r["acked"] + r["nacked"] + r["failed"]
        check("every message has an outcome",
              out == r["published"] and r["unknown"] == 0 and s["in_flight"] == 0 and
              s["published"] == s["acked"] + s["nacked"] + s["returned"] + s["failed"],
              "published %d = acked %d + nacked %d + failed %d (%d without an outcome); "
              "salvo: published %d, acked %d, nacked %d, returned %d, failed %d, in flight %d" %
              (r["published"], r["acked"], r["nacked"], r["failed"], r["unknown"],
               s["published"], s["acked"], s["nacked"], s["returned"], s["failed"],
               s["in_flight"]))
        check("queues empty at the end", r["queues_ready"] == 0,
              "passive declares: %s ready after %.1f s of draining" %
              (r["queue_depths"], r["drain_s"]))
        check("nothing foreign consumed", r["foreign"] == 0,
              "%d bodies that name no message of this run" % r["foreign"])
        stopped = ["producer %d: %s" % (p["id"], p["error"]) for p in r["producers"] if p["error"]]
        check("every producer ran to the end", not stopped,
              "; ".join(stopped) if stopped else "%d producers" % len(r["producers"]))
        check("messages published", r["published"] > 0 and r["acked"] > 0,
              "%d published, %d acked" % (r["published"], r["acked"]))

    # Resources: the first and the last window of the run (before the stop). The first
    # starts once every kind of fault has happened once and ended (at least WARMUP_S in;
    # at most a third of the run, so that the windows stay apart): the first recovery
    # from each kind sets the allocator's high-water marks (buffers of a resend, a
    # reconnection's channels), a step seen once; a leak grows with every repetition.
    window = 60 if a.minutes > 2 else 30
    samples = client.samples
    stop_t = client.stopped_at or (samples[-1][0] if samples else 0)
    seen = {}
    for f in faults:
        seen.setdefault(f["kind"], f["end"])
    warm = max(seen.values()) if len(seen) == len(KINDS) else stop_t
    warm = max(WARMUP_S, min(warm, stop_t / 3))
    first = [f for t, f in samples if warm <= t <= warm + window]
    last = [f for t, f in samples if t >= stop_t - window]
    res = {"window_s": window, "first_from_s": round(warm, 1)}
    for key in ("rss_kb", "fds", "threads"):
        if first and last:
            fm = sum(int(f[key]) for f in first) / len(first)
            lm = sum(int(f[key]) for f in last) / len(last)
        else:
            fm = lm = 0
        res[key] = {"first": round(fm, 1), "last": round(lm, 1)}
        check("%s flat" % key, within(fm, lm),
              "mean %.1f over %.0f-%.0f s, %.1f over the last %d s (within 10%%)" %
              (fm, warm, warm + window, lm, window))

    # The table.
    rows = []
    for i, f in enumerate(faults):
        until = faults[i + 1]["began"] if i + 1 < len(faults) else (stop_t or 1e9)
        rec, pre, rec_t = recovery(progress, f, until)
        resent = (at(progress, rec_t if rec_t else until, "resent") -
                  at(progress, f["t"], "resent"))
        rows.append({"t": round(f["t"], 1), "kind": f["kind"], "target": f["target"],
                     "lasted_s": round(f["end"] - f["t"], 1),
                     "command_s": round(f["t"] - f["began"], 1),
                     "pre_rate": round(pre, 1),
                     "recovered_s": None if rec is None else round(rec, 1),
                     "resent": resent})
    check("every fault recovered from", all(x["recovered_s"] is not None for x in rows),
          "%d of %d faults recovered before the next fault or the end" %
          (sum(x["recovered_s"] is not None for x in rows), len(rows)))
    check("faults injected", len(rows) > 0 and not errors,
          "%d faults%s" % (len(rows), "; not injected: " + "; ".join(errors) if errors else ""))

    log("")
    log("soak: seed %d, %g minutes, %d faults" % (a.seed, a.minutes, len(rows)))
    log("%7s  %-6s %-28s %7s %9s %10s %7s" % ("time s", "fault", "target", "lasted",
                                               "pre msg/s", "recovered", "resent"))
    for x in rows:
        log("%7.1f  %-6s %-28s %6.1fs %9.0f %10s %7d" %
            (x["t"], x["kind"], x["target"], x["lasted_s"], x["pre_rate"],
             "-" if x["recovered_s"] is None else "%.1f s" % x["recovered_s"], x["resent"]))
    log("")
    for c in checks:
        log("%-4s %-32s %s" % ("ok" if c["ok"] else "FAIL", c["check"], c["detail"]))
    ok = all(c["ok"] for c in checks)
    log("soak: %s" % ("passed" if ok else "FAILED"))
    if a.json:
        with open(a.json, "w") as fp:
            json.dump({"seed": a.seed, "minutes": a.minutes, "faults": rows, "checks": checks,
                       "resources": res, "result": r, "passed": ok}, fp, indent=1)
            fp.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
