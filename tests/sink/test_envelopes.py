#!/usr/bin/python3
"""salvo-sink and envelopes (README "Batching"): valid ones (plain, lz4, zstd, bodies in
one frame or several) counted with their records, invalid ones counted as such, confirmed,
logged with --log-bad-envelopes, and never the end of the sink; then salvo-perf and
salvo-publish with their batching options against the sink, whose counts must agree with
theirs.

    test_envelopes.py CASE SALVO_SINK SALVO_PERF SALVO_PUBLISH

Each case starts its own sink with --json and checks the totals it prints at exit.
Exit 0 pass, 1 fail, 77 skip (python3-lz4 or python3-zstandard missing).
"""
import json
import os
import struct
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sinktest import (BASIC_ACK, Sink, check, connect, main, open_channel,  # noqa: E402
                      parse_ack, publish, read_method, shortstr)

try:
    import lz4.frame
    import zstandard
except ImportError as e:
    sys.stderr.write("%s: python3-lz4 and python3-zstandard are needed\n" % e)
    sys.exit(77)

CONTENT_TYPE = "application/vnd.salvo.batch+v1"
PROP_CONTENT_TYPE, PROP_CONTENT_ENCODING, PROP_HEADERS = 1 << 15, 1 << 14, 1 << 13
PROP_DELIVERY_MODE = 1 << 12
# The integer field types a reader must take for x-salvo-records, with their packing.
INT_FIELDS = {b"b": ">b", b"B": ">B", b"s": ">h", b"u": ">H", b"I": ">i", b"i": ">I",
              b"l": ">q"}


def field(name, ftype, value):
    return shortstr(name) + ftype + value


def count_field(n, ftype=b"I"):
    return field("x-salvo-records", ftype, struct.pack(INT_FIELDS[ftype], n))


def props(content_type=CONTENT_TYPE, encoding=None, headers=b"", delivery_mode=None):
    """(flags, bytes) of basic properties; headers: a table's contents, None for none."""
    flags, out = 0, b""
    if content_type is not None:
        flags |= PROP_CONTENT_TYPE
        out += shortstr(content_type)
    if encoding is not None:
        flags |= PROP_CONTENT_ENCODING
        out += shortstr(encoding)
    if headers is not None:
        flags |= PROP_HEADERS
        out += struct.pack(">I", len(headers)) + headers
    if delivery_mode is not None:
        flags |= PROP_DELIVERY_MODE
        out += bytes([delivery_mode])
    return flags, out


def records_body(records):
    return b"".join(struct.pack(">I", len(r)) + r for r in records)


def compress(codec, body):
    if codec == "lz4":
        return lz4.frame.compress(body)
    if codec == "zstd":
        return zstandard.ZstdCompressor().compress(body)
    return body


def envelope(records, codec=None, count=None, ftype=b"I", extra_headers=b"", **kw):
    """publish() arguments of an envelope of records: (body, props)."""
    n = len(records) if count is None else count
    return (compress(codec, records_body(records)),
            props(encoding=codec, headers=extra_headers + count_field(n, ftype), **kw))


def some_records(n, size=40):
    """Telemetry-like records of varied lengths (one empty), each different."""
    out = [b""]
    for i in range(1, n):
        out.append(json.dumps({"seq": i, "host": "web-%02d" % (i % 7), "value": i * 0.25})
                   .encode()[:size + i % 13])
    return out


def publish_confirmed(s, messages, channel=1, key="env", frame_body=None):
    """Publish (body, props) pairs in one write on a confirm channel; wait for the acks of
    all of them (one multiple ack per read batch of the sink)."""
    tag0 = publish_confirmed.tags.get((id(s), channel), 0)
    s.sendall(b"".join(publish(channel, key, body, props=p, frame_body=frame_body)
                       for body, p in messages))
    last, want = tag0, tag0 + len(messages)
    while last < want:
        ch, cm, args = read_method(s)
        check((ch, cm) == (channel, BASIC_ACK), "expected basic.ack on %d, got %r on %d"
              % (channel, cm, ch))
        last, _ = parse_ack(args)
    check(last == want, "acked up to %d, expected %d" % (last, want))
    publish_confirmed.tags[(id(s), channel)] = want


publish_confirmed.tags = {}  # the last tag of each (socket, channel)


def expect_totals(sink, **want):
    got = sink.totals()
    sys.stdout.write("salvo-sink totals: %s\n" % json.dumps(got))
    for k, v in want.items():
        check(got[k] == v, "%s: %r, expected %r (totals %r)" % (k, got[k], v, got))
    # The definition of records: one per message that is not an envelope.
    plain = got["messages"] - got["envelopes"] - got["invalid_envelopes"]
    check(got["records"] == plain + got["envelope_records"], "records %r" % got)
    return got


def valid(exe):
    """Plain, lz4 and zstd envelopes, every integer type of x-salvo-records, other headers
    and properties beside it, frames with and without a content size and checksums, and
    messages that are not envelopes: all acked, each envelope's records counted."""
    recs = [some_records(n) for n in (1, 10, 100, 1000)]
    zstd_nosize = zstandard.ZstdCompressor(write_content_size=False, write_checksum=True)
    messages = [
        (b"not an envelope", props(content_type=None, headers=None)),
        (b"[1, 2]", props(content_type="application/json", headers=None)),
        (b"", props(content_type=None, headers=None)),
        envelope(recs[0]),
        envelope(recs[1], "lz4"),
        envelope(recs[2], "zstd"),
        envelope(recs[3], "zstd", extra_headers=field("trace", b"S", struct.pack(">I", 2) + b"ab"),
                 delivery_mode=2),
        (zstd_nosize.compress(records_body(recs[2])),
         props(encoding="zstd", headers=count_field(100))),
        (lz4.frame.compress(records_body(recs[2]), store_size=False, content_checksum=True,
                            block_checksum=True),
         props(encoding="lz4", headers=count_field(100))),
        # An envelope can be one empty record.
        envelope([b""]),
    ]
    for ftype in INT_FIELDS:
        messages.append(envelope(recs[1], ftype=ftype))
    with Sink(exe, "--json") as sink:
        s = connect(sink.port)
        open_channel(s, 1, confirm=True)
        publish_confirmed(s, messages)
        s.close()
        n_env = len(messages) - 3
        env_records = 1 + 10 + 100 + 1000 + 100 + 100 + 1 + 10 * len(INT_FIELDS)
        expect_totals(sink, messages=len(messages), envelopes=n_env, invalid_envelopes=0,
                      envelope_records=env_records, records=3 + env_records)


def split(exe):
    """Envelope bodies in several body frames (frame_max 4096): gathered, then checked;
    plain and zstd, and over --envelope-max only once whole."""
    big = some_records(600)  # about 30 KB of records
    plain_body = records_body(big)
    check(len(plain_body) > 4 * 4096, "the test's body is too small to split")
    with Sink(exe, "--json", "--frame-max", "4096", "--envelope-max", "1048576") as sink:
        s = connect(sink.port, frame_max=4096)
        open_channel(s, 1, confirm=True)
        publish_confirmed(s, [envelope(big), envelope(big, "zstd"), envelope(big, "lz4"),
                              envelope(big, count=599)], frame_body=4096 - 8)
        # The same again in frames of 1000 bytes, and in frames of one byte for a small one.
        publish_confirmed(s, [envelope(big), envelope(big, "zstd")], frame_body=1000)
        publish_confirmed(s, [envelope(some_records(5), "lz4")], frame_body=1)
        s.close()
        expect_totals(sink, messages=7, envelopes=6, invalid_envelopes=1,
                      envelope_records=5 * 600 + 5)


def bomb(codec, size, declared=True):
    """One record of zeros, size bytes once decompressed; declared: the frame states its
    content size (so the cap refuses it up front), else only decompressing finds out."""
    body = records_body([b"\0" * (size - 4)])
    if declared:
        return compress(codec, body)
    if codec == "lz4":
        return lz4.frame.compress(body, store_size=False)
    return zstandard.ZstdCompressor(write_content_size=False).compress(body)


def invalid(exe):
    """Every way an envelope can be wrong: counted as invalid (and logged), acked like any
    message, and the channel, the connection and the sink go on."""
    recs = some_records(3)
    body = records_body(recs)
    lz4_body = compress("lz4", body)
    zstd_body = compress("zstd", body)
    bad = {
        "count over the records": (body, props(headers=count_field(4))),
        "count under the records": (body, props(headers=count_field(2))),
        "a length overrunning the body": (body[:-1], props(headers=count_field(3))),
        "a byte after the last record": (body + b"x", props(headers=count_field(3))),
        "a body shorter than a length": (b"\0\0", props(headers=count_field(1))),
        "no x-salvo-records": (body, props(headers=None)),
        "x-salvo-records not an integer": (body, props(headers=field(
            "x-salvo-records", b"S", struct.pack(">I", 1) + b"3"))),
        "x-salvo-records 0": (b"", props(headers=count_field(0))),
        "x-salvo-records negative": (body, props(headers=count_field(-3))),
        "x-salvo-records beyond the maximum": (body, props(headers=count_field(2**40, b"l"))),
        "an empty body": (b"", props(headers=count_field(1))),
        "content_encoding gzip": (body, props(encoding="gzip", headers=count_field(3))),
        "corrupt lz4": (lz4_body[:12] + bytes(b ^ 0x5A for b in lz4_body[12:]),
                        props(encoding="lz4", headers=count_field(3))),
        "truncated lz4": (lz4_body[:-3], props(encoding="lz4", headers=count_field(3))),
        "truncated zstd": (zstd_body[:-5], props(encoding="zstd", headers=count_field(3))),
        "bytes after the zstd frame": (zstd_body + b"junk",
                                       props(encoding="zstd", headers=count_field(3))),
        "two zstd frames": (zstd_body + zstd_body, props(encoding="zstd", headers=count_field(3))),
        "zstd said lz4": (zstd_body, props(encoding="lz4", headers=count_field(3))),
        "plain said zstd": (body, props(encoding="zstd", headers=count_field(3))),
        "zstd bomb": (bomb("zstd", 4 << 20), props(encoding="zstd", headers=count_field(1))),
        "lz4 bomb": (bomb("lz4", 4 << 20), props(encoding="lz4", headers=count_field(1))),
        "zstd bomb, size not declared": (bomb("zstd", 4 << 20, declared=False),
                                         props(encoding="zstd", headers=count_field(1))),
        "lz4 bomb, size not declared": (bomb("lz4", 4 << 20, declared=False),
                                        props(encoding="lz4", headers=count_field(1))),
        "decompressed one byte over the limit": (bomb("zstd", 65537),
                                                 props(encoding="zstd", headers=count_field(1))),
        "a body over the limit": (records_body([b"y" * 70000]), props(headers=count_field(1))),
    }
    with Sink(exe, "--json", "--envelope-max", "65536", "--log-bad-envelopes") as sink:
        s = connect(sink.port)
        open_channel(s, 1, confirm=True)
        for name, message in bad.items():
            sys.stdout.write("invalid: %s\n" % name)
            publish_confirmed(s, [message])
            check(sink.alive(), "the sink died on: %s" % name)
        # Exactly at the limit is still an envelope; then a valid one on the same channel.
        publish_confirmed(s, [(bomb("zstd", 65536), props(encoding="zstd", headers=count_field(1))),
                              (bomb("lz4", 65536, declared=False),
                               props(encoding="lz4", headers=count_field(1))),
                              envelope(recs, "lz4")])
        # A bystander connection was never disturbed.
        other = connect(sink.port)
        open_channel(other, 1, confirm=True)
        publish_confirmed(other, [envelope(recs)])
        s.close()
        other.close()
        got = expect_totals(sink, messages=len(bad) + 4, envelopes=4,
                            invalid_envelopes=len(bad), envelope_records=1 + 1 + 3 + 3)
        logged = [line for line in sink.log().splitlines() if "invalid envelope on channel 1:" in line]
        check(len(logged) == got["invalid_envelopes"], "%d log lines for %d invalid envelopes:\n%s"
              % (len(logged), got["invalid_envelopes"], "\n".join(logged)))


def run_json(argv):
    """Run a tool with --json; its last stdout line as a dict."""
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=120)
    sys.stdout.write("$ %s\n%s%s" % (" ".join(argv), out.stderr, out.stdout))
    check(out.returncode == 0, "exit status %d" % out.returncode)
    return json.loads(out.stdout.splitlines()[-1])


def agree(tool, sink_totals, records):
    """What a batching tool reports and what the sink counted: every record published
    arrived as a record; the sink saw as valid envelopes exactly the envelopes salvo says
    it sent. While salvo does not batch, envelopes is 0 on both sides."""
    check(tool["records" if "records" in tool else "sent"] == records, "records %r" % tool)
    check(tool["acked"] == records, "acked %r" % tool)
    check(tool["envelopes"] <= records, "more envelopes than records: %r" % tool)
    check(sink_totals["records"] == records, "the sink counted %d records, expected %d"
          % (sink_totals["records"], records))
    check(sink_totals["invalid_envelopes"] == 0, "invalid envelopes: %r" % sink_totals)
    check(sink_totals["envelopes"] == tool["envelopes"],
          "the sink saw %d envelopes, salvo says it sent %d"
          % (sink_totals["envelopes"], tool["envelopes"]))
    if tool["envelopes"]:
        check(tool["records_per_envelope"] <= tool["batch_records"], "records per envelope %r"
              % tool)
        check(0 < tool["envelope_bytes"], "envelope_bytes %r" % tool)
    else:
        sys.stdout.write("note: salvo sent no envelopes: every record went as a message\n")


def perf(exe):
    """salvo-perf --batch-records with each compression (and JSON bodies) against the
    sink: records == messages published, envelopes <= records, the sink agrees."""
    perf_exe = sys.argv[3]
    n = 20000
    for codec, body in (("none", "pattern"), ("lz4", "json"), ("zstd", "json")):
        with Sink(exe, "--json", "--quiet") as sink:
            j = run_json([perf_exe, "--uri", "amqp://guest:guest@127.0.0.1:%d" % sink.port,
                          "--count", str(n), "--confirm", "async", "--producers", "2",
                          "--batch-records", "100", "--batch-bytes", "16384", "--linger-us",
                          "500", "--compression", codec, "--body", body, "--size", "100",
                          "--quiet", "--json"])
            totals = sink.totals()
            sys.stdout.write("salvo-sink totals: %s\n" % json.dumps(totals))
            check(j["sent"] == n and j["records_per_s"] > 0, "sent %r" % j)
            check((j["batch_records"], j["batch_bytes"], j["linger_us"], j["compression"], j["body"])
                  == (100, 16384, 500, codec, body), "batching as given: %r" % j)
            agree(j, totals, n)


def publish_tool(exe):
    """salvo-publish --batch-records: stdin lines and --count messages as records, against
    the sink."""
    pub_exe = sys.argv[4]
    lines = "".join(json.dumps({"seq": i, "msg": "x" * (i % 50)}) + "\n" for i in range(5000))
    with Sink(exe, "--json", "--quiet") as sink:
        uri = "amqp://guest:guest@127.0.0.1:%d" % sink.port
        out = subprocess.run([pub_exe, "--uri", uri, "-r", "events", "--confirm", "async",
                              "--batch-records", "500", "--compression", "zstd",
                              "--compression-level", "19", "--json"],
                             input=lines, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=120)
        sys.stdout.write(out.stderr + out.stdout)
        check(out.returncode == 0, "stdin: exit status %d" % out.returncode)
        j = json.loads(out.stdout)
        check(j["compression"] == "zstd" and j["compression_level"] == 19, "%r" % j)
        agree(j, sink.totals(), 5000)
    with Sink(exe, "--json", "--quiet") as sink:
        uri = "amqp://guest:guest@127.0.0.1:%d" % sink.port
        j = run_json([pub_exe, "--uri", uri, "-r", "events", "--count", "3000", "--size", "64",
                      "--confirm", "sync", "--batch-records", "64", "--linger-us", "200",
                      "--compression", "lz4", "--json"])
        agree(j, sink.totals(), 3000)


def options(exe):
    """--help describes the envelope options and the JSON; bad values exit 2 with a
    message naming the option."""
    out = subprocess.run([exe, "--help"], stdout=subprocess.PIPE, universal_newlines=True)
    check(out.returncode == 0, "--help: exit status %d" % out.returncode)
    for word in ("--envelope-max", "--log-bad-envelopes", "--json", "records/s", "records",
                 "envelope_records", "invalid_envelopes", CONTENT_TYPE):
        check(word in out.stdout, "--help does not mention %s" % word)
    for args in (["--envelope-max", "4095"], ["--envelope-max", "268435457"],
                 ["--envelope-max", "1k"], ["--envelope-max"], ["--json=yes"]):
        out = subprocess.run([exe, "--listen", "127.0.0.1:0", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, timeout=10)
        check(out.returncode == 2, "%r: exit status %d" % (args, out.returncode))
        check(out.stderr.startswith("salvo-sink: "), "%r: %r" % (args, out.stderr))
        check(args[0] in out.stderr, "%r: the message does not name the option: %r"
              % (args, out.stderr))


if __name__ == "__main__":
    main({
        "valid": valid,
        "split": split,
        "invalid": invalid,
        "salvo-perf": perf,
        "salvo-publish": publish_tool,
        "options": options,
    })
