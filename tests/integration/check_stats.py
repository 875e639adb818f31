#!/usr/bin/env python3
"""Check salvo's statistics as a monitoring system would read them.

  check_stats.py json DOCS API
      DOCS: one statistics document (JSON) per line, in the order the callback got them;
      API: one JSON object of the same figures read through the C API after the last
      document, with nothing moving. Every document must parse with the json module and
      follow docs/statistics.md (every field, integers only where figures are); counters
      never go down from one document to the next; the interval latencies partition the
      outcomes (their counts add up to the last document's latency_count); and the last
      document agrees with the C API.

  check_stats.py prom FILE [NAME=VALUE ...]
      FILE: a Prometheus text exposition. Every line must parse; each metric has one HELP
      and one TYPE before its samples, all its samples together; no series twice;
      histogram buckets are cumulative and +Inf equals _count. Each NAME=VALUE says the
      samples of metric NAME add up to VALUE.

Exit status 0 when everything holds, 1 (with what failed) otherwise.
"""
import json
import math
import re
import sys

IO = ["turns", "waits", "submits", "sends", "send_bytes", "recvs", "recv_bytes", "wakeups",
      "kicks", "ack_holds"]
PUB = ["published", "acked", "nacked", "returned", "failed", "in_flight", "resent",
       "possibly_lost", "returns_unmatched", "returns_dropped", "envelopes", "envelope_bytes",
       "envelope_raw_bytes", "latency_count", "latency_sum_ns", "latency_max_ns"]
LAT = ["count", "p50_ns", "p99_ns", "p999_ns", "max_ns"]
CONSUMING = ["delivered", "buffered_bytes", "buffered_peak", "read_holds", "settles",
             "settle_frames", "settles_dropped", "handovers", "envelopes", "records",
             "envelopes_rejected", "stream_holds"]
CONSUMER = ["delivered", "taken", "handovers", "buffered_bytes", "acks", "nacks", "rejects"]
# Figures that may go down: gauges.
GAUGES = {"in_flight", "buffered_bytes", "blocked", "latency_max_ns"}

failures = []


def fail(msg):
    failures.append(msg)


def is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_fields(where, obj, names, strings=(), objects=()):
    if not isinstance(obj, dict):
        fail(f"{where}: not an object")
        return
    for n in names:
        if n not in obj:
            fail(f"{where}: no field {n}")
        elif not is_count(obj[n]):
            fail(f"{where}.{n}: {obj[n]!r} is not a non-negative integer")
    for n in strings:
        if not isinstance(obj.get(n), str):
            fail(f"{where}: {n} is not a string")
    for n in objects:
        if not isinstance(obj.get(n), (dict, list)):
            fail(f"{where}: {n} is not an object or array")
    extra = set(obj) - set(names) - set(strings) - set(objects) - {"interval_latency"}
    if extra:
        fail(f"{where}: fields the schema does not have: {sorted(extra)}")


def check_doc(i, d):
    w = f"document {i}"
    check_fields(w, d, ["schema", "time_ms", "seq", "interval_ms", "incomplete"],
                 strings=["name"],
                 objects=["connection", "io", "publishing", "closed_publishers", "publishers",
                          "consuming", "consumers"])
    if d.get("schema") != 1:
        fail(f"{w}: schema {d.get('schema')!r}, not 1")
    c = d.get("connection", {})
    if isinstance(c, dict):
        check_fields(w + ".connection", c,
                     ["reconnects", "blocked", "blocked_ms", "events_dropped"],
                     strings=["state", "endpoint"])
        if c.get("state") not in ("open", "closing", "recovering", "closed"):
            fail(f"{w}: connection.state {c.get('state')!r}")
    check_fields(w + ".io", d.get("io"), IO)
    check_fields(w + ".publishing", d.get("publishing"), PUB)
    check_fields(w + ".publishing.interval_latency",
                 d.get("publishing", {}).get("interval_latency"), LAT)
    check_fields(w + ".closed_publishers", d.get("closed_publishers"), PUB)
    for k, p in enumerate(d.get("publishers") or []):
        check_fields(f"{w}.publishers[{k}]", p, ["channel"] + PUB, strings=["confirm"])
        check_fields(f"{w}.publishers[{k}].interval_latency", p.get("interval_latency"), LAT)
        if p.get("confirm") not in ("none", "async", "sync"):
            fail(f"{w}.publishers[{k}].confirm {p.get('confirm')!r}")
    check_fields(w + ".consuming", d.get("consuming"), CONSUMING)
    for k, p in enumerate(d.get("consumers") or []):
        check_fields(f"{w}.consumers[{k}]", p, ["channel"] + CONSUMER, strings=["tag"])


def counters(d):
    """The document's counters as (path, value), gauges left out."""
    out = {}
    for sect in ("connection", "io", "publishing", "closed_publishers", "consuming"):
        for k, v in d[sect].items():
            if is_count(v) and k not in GAUGES:
                out[f"{sect}.{k}"] = v
    for p in d["publishers"]:
        for k, v in p.items():
            if is_count(v) and k not in GAUGES and k != "channel":
                out[f"publisher {p['channel']}.{k}"] = v
    for p in d["consumers"]:
        for k, v in p.items():
            if is_count(v) and k not in GAUGES and k != "channel":
                out[f"consumer {p['tag']}.{k}"] = v
    return out


def check_json(docs_path, api_path):
    docs = []
    with open(docs_path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            try:
                docs.append(json.loads(line))
            except ValueError as e:
                fail(f"document {n} does not parse: {e}: {line[:200]!r}")
    if len(docs) < 3:
        fail(f"only {len(docs)} documents")
    for i, d in enumerate(docs):
        check_doc(i, d)
    if failures:
        return
    for i, d in enumerate(docs):
        if d["seq"] != i:
            fail(f"document {i}: seq {d['seq']}")
    for i in range(1, len(docs)):
        a, b = counters(docs[i - 1]), counters(docs[i])
        for k, v in a.items():
            if k in b and b[k] < v:
                fail(f"documents {i - 1} -> {i}: {k} went down, {v} -> {b[k]}")
        if docs[i]["time_ms"] < docs[i - 1]["time_ms"]:
            fail(f"document {i}: time_ms went back")
        if docs[i]["interval_ms"] <= 0:
            fail(f"document {i}: interval_ms {docs[i]['interval_ms']}")
    last = docs[-1]
    # Every sampled outcome falls in exactly one document's interval.
    iv = sum(d["publishing"]["interval_latency"]["count"] for d in docs)
    if iv != last["publishing"]["latency_count"]:
        fail(f"interval latency counts add up to {iv}, "
             f"not latency_count {last['publishing']['latency_count']}")
    for p in last["publishers"]:
        total = sum(q["interval_latency"]["count"] for d in docs for q in d["publishers"]
                    if q["channel"] == p["channel"])
        if total != p["latency_count"]:
            fail(f"publisher {p['channel']}: interval counts {total}, "
                 f"latency_count {p['latency_count']}")
    for d in docs:
        lat = d["publishing"]["interval_latency"]
        if lat["count"] and not (lat["p50_ns"] <= lat["p99_ns"] <= lat["p999_ns"] <= lat["max_ns"]):
            fail(f"document {d['seq']}: percentiles out of order: {lat}")
    seen = {d["connection"]["reconnects"] for d in docs}
    with open(api_path, encoding="utf-8") as f:
        api = json.load(f)
    if api["reconnects"] and not ({0, api["reconnects"]} <= seen):
        fail(f"documents saw reconnects {sorted(seen)}: none from before and after the "
             f"reconnection")
    # The last document against the C API, read with nothing moving.
    want = {
        "connection.reconnects": api["reconnects"],
        "connection.endpoint": api["endpoint"],
        "connection.state": "open",
    }
    for k in PUB:
        want["publishing." + k] = api["client"][k]
    for k in CONSUMING:
        want["consuming." + k] = api["consume"][k]
    for k, v in want.items():
        sect, field = k.split(".")
        got = last[sect][field]
        if got != v:
            fail(f"last document {k} = {got!r}, the C API says {v!r}")
    # The API's publishers are the client's live ones, as many as the document lists.
    if len(api["publishers"]) != len(last["publishers"]):
        fail(f"the last document lists {len(last['publishers'])} publishers, "
             f"the C API {len(api['publishers'])}")
    for mine, p in zip(last["publishers"], api["publishers"]):
        for k in PUB:
            if mine[k] != p[k]:
                fail(f"publisher {mine['channel']}: {k} = {mine[k]}, the C API says {p[k]}")
    cons = {c["tag"]: c for c in last["consumers"]}
    for c in api["consumers"]:
        mine = cons.get(c["tag"])
        if not mine:
            fail(f"consumer {c['tag']} missing from the last document")
            continue
        for k in CONSUMER:
            if mine[k] != c[k]:
                fail(f"consumer {c['tag']}: {k} = {mine[k]}, the C API says {c[k]}")
    # The I/O thread's counters: the document's cannot exceed what was read after it.
    for k in IO:
        if last["io"][k] > api["io"][k]:
            fail(f"io.{k}: document {last['io'][k]} > the C API's later {api['io'][k]}")
    for k in ("sends", "recvs", "send_bytes", "recv_bytes", "turns"):
        if not last["io"][k]:
            fail(f"io.{k} is 0 after a run")
    print("seq  state       reconnects  published    acked  in_flight  interval: outcomes"
          "  p50_us  p99_us")
    for d in docs:
        pub, lat = d["publishing"], d["publishing"]["interval_latency"]
        print(f"{d['seq']:3}  {d['connection']['state']:10}  {d['connection']['reconnects']:10}"
              f"  {pub['published']:9}  {pub['acked']:7}  {pub['in_flight']:9}"
              f"  {lat['count']:18}  {lat['p50_ns'] / 1000:6.0f}  {lat['p99_ns'] / 1000:6.0f}")
    print(f"{len(docs)} documents; reconnects seen {sorted(seen)}; "
          f"published {last['publishing']['published']}, "
          f"interval latency counts {iv} = latency_count")


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_labels(text, where):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            fail(f"{where}: bad labels {text!r}")
            return None
        if m.group(1) in labels:
            fail(f"{where}: label {m.group(1)} twice")
        labels[m.group(1)] = m.group(2)
        pos = m.end()
    return labels


def check_prom(path, sums):
    families, order, series = {}, [], set()
    current = None
    done = set()
    total = {}
    buckets = {}
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text.endswith("\n"):
        fail("the text does not end with a newline")
    for n, line in enumerate(text.splitlines(), 1):
        where = f"line {n}"
        if not line:
            fail(f"{where}: empty")
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4:
                fail(f"{where}: {line!r}")
                continue
            name = parts[2]
            fam = families.setdefault(name, {})
            key = parts[1]
            if key in fam:
                fail(f"{where}: second {key} for {name}")
            if key == "TYPE" and parts[3] not in ("counter", "gauge", "histogram"):
                fail(f"{where}: type {parts[3]!r}")
            fam[key] = parts[3]
            if current != name:
                if name in done:
                    fail(f"{where}: {name} again after other metrics")
                if current:
                    done.add(current)
                current = name
                order.append(name)
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            fail(f"{where}: not a sample: {line!r}")
            continue
        name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        fam_name = name if name in families else base
        fam = families.get(fam_name)
        if fam is None or fam_name != current:
            fail(f"{where}: sample of {name} outside its metric's HELP/TYPE block")
            continue
        if "TYPE" not in fam or "HELP" not in fam:
            fail(f"{where}: {fam_name} lacks HELP or TYPE")
        if fam_name != name and fam.get("TYPE") != "histogram":
            fail(f"{where}: {name} in a {fam.get('TYPE')}")
        if fam.get("TYPE") == "counter" and not name.endswith("_total"):
            fail(f"{where}: counter {name} does not end in _total")
        labels = parse_labels(labels_text, where)
        if labels is None:
            continue
        try:
            v = float(value)
        except ValueError:
            fail(f"{where}: value {value!r}")
            continue
        if math.isnan(v) or v < 0:
            fail(f"{where}: value {value!r}")
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            fail(f"{where}: series {key} twice")
        series.add(key)
        total[name] = total.get(name, 0) + v
        if fam.get("TYPE") == "histogram":
            rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            h = buckets.setdefault((fam_name, rest), {"le": [], "count": None})
            if name.endswith("_bucket"):
                le = labels.get("le")
                if le is None:
                    fail(f"{where}: bucket without le")
                    continue
                h["le"].append((math.inf if le == "+Inf" else float(le), v))
            elif name.endswith("_count"):
                h["count"] = v
    for (fam_name, rest), h in buckets.items():
        les = h["le"]
        if not les or les[-1][0] != math.inf:
            fail(f"{fam_name}{rest}: no +Inf bucket last")
            continue
        for (a, x), (b, y) in zip(les, les[1:]):
            if b <= a or y < x:
                fail(f"{fam_name}{rest}: buckets not cumulative at le={b}")
        if h["count"] != les[-1][1]:
            fail(f"{fam_name}{rest}: _count {h['count']} != +Inf bucket {les[-1][1]}")
    for spec in sums:
        name, want = spec.split("=", 1)
        if total.get(name) != float(want):
            fail(f"{name} adds up to {total.get(name)}, not {want}")
    if not series:
        fail("no samples")
    print(f"{len(order)} metrics, {len(series)} series, {len(buckets)} histograms")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "json":
        check_json(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == "prom":
        check_prom(sys.argv[2], sys.argv[3:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for f in failures[:50]:
        print("check_stats:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
