#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""salvo's envelopes read by pika (Debian's python3-pika) with the README's decoder.

The decoder is the code block of README.md's "Reading envelopes in Python", executed as
it stands, so what users copy is what is tested (tests/codec/test_batch_decode.py's 'same
as the README' keeps tests/integration/batch_decode.py equal to it).

    test_batch_pika.py CASE SALVO_PUBLISH BATCH_PIKA_PUBLISH

plain, lz4, zstd   salvo-publish sends 10,000 records (lines of standard input: JSON
                   lines, empty ones, binary bytes) persistent, with async confirms, in
                   envelopes of up to 135 records or 16 KiB (about what 16 KiB of them
                   hold: envelopes close on either limit, and none may pass one); pika
                   consumes them (basic_consume) and checks every record, in order, and
                   every envelope's properties (content type, encoding, x-salvo-records
                   the only header, delivery mode 2); the envelope count must be the
                   broker's and salvo-publish's, at most one per 20 records, and the
                   bytes salvo-publish counts those the envelopes hold.
properties         batch_pika_publish sends 2,000 binary records (newlines too, up to
                   3,000 bytes) with every property and a header of every type
                   (props_sample.h), plain, lz4 and zstd; pika reads them (basic_get)
                   and each envelope carries the sample's properties and headers as
                   test_props_pika.py expects them, plus the format's own.

Each case uses a queue of its own (meson runs cases in parallel). Needs SALVO_TEST_URI;
exits 77 (skip) without it or without python3-pika, python3-lz4, python3-zstandard.
"""
import json
import os
import random
import struct
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
here = os.path.dirname(os.path.abspath(__file__))

try:
    import lz4.frame  # noqa: F401 (the README's decoder imports them itself)
    import pika
    import zstandard  # noqa: F401
except ImportError as e:
    print("skipped: %s (apt-get install python3-pika python3-lz4 python3-zstandard)" % e,
          file=sys.stderr)
    sys.exit(77)

from test_props_pika import SAMPLE_HEADERS, SAMPLE_PROPS, check  # noqa: E402

CONTENT_TYPE = "application/vnd.salvo.batch+v1"
# Envelopes that salvo may send plain although compression was asked for: those that
# would not be smaller compressed. Every envelope of this test's records above this many
# bytes (before compression) compresses.
SMALL_ENVELOPE = 1024
# salvo-publish's batching (case_lines); linger 100 ms, so that the limits, not the
# clock, close envelopes.
BATCH_RECORDS, BATCH_BYTES, LINGER_US = 135, 16384, 100000


def fail(msg):
    print("FAIL: %s" % msg, file=sys.stderr)
    sys.exit(1)


def readme_decoder():
    """salvo_records from README.md's Python block, run as it stands."""
    with open(os.path.join(here, "..", "..", "README.md"), encoding="utf-8") as f:
        readme = f.read()
    start = readme.index("### Reading envelopes in Python")
    block = readme[readme.index("```python\n", start) + len("```python\n"):]
    block = block[:block.index("```")]
    scope = {}
    exec(compile(block, "README.md (Reading envelopes in Python)", "exec"), scope)
    return scope["salvo_records"]


salvo_records = readme_decoder()


def line_records(n):
    """n records that are lines (no newline byte): mostly JSON telemetry, every 97th
    empty, every 89th a few hundred bytes of any other value (NUL, CR, 0xff...)."""
    rng = random.Random(15)
    others = bytes(b for b in range(256) if b != 0x0A)
    out = []
    for i in range(n):
        if i % 97 == 0:
            out.append(b"")
        elif i % 89 == 0:
            out.append(bytes(rng.choice(others) for _ in range(rng.randrange(1, 400))))
        else:
            out.append(json.dumps({"seq": i, "host": "node-%d" % (i % 7), "metric": "cpu",
                                   "value": rng.randrange(10000) / 100,
                                   "tags": "x" * rng.randrange(80)}).encode())
    return out


def binary_records(n):
    """n records of any bytes, newlines included, 0 to 3,000 bytes long; compressible
    (runs of one byte) so that envelopes compress."""
    rng = random.Random(16)
    out = []
    for i in range(n):
        size = 0 if i % 50 == 0 else rng.randrange(1, 3000)
        out.append(bytes([rng.randrange(256), 0x0A]) * 4 +
                   bytes([i % 256]) * max(0, size - 8))
    return out


def fresh_queue(conn, name):
    ch = conn.channel()
    ch.queue_delete(name)
    ch.queue_declare(name)
    ch.close()


def queue_count(conn, name):
    ch = conn.channel()
    n = ch.queue_declare(name, passive=True).method.message_count
    ch.close()
    return n


def check_envelope(what, method, props, body, queue, encoding, want_props, want_headers):
    """The records of one envelope, once its delivery and properties are checked."""
    if method.exchange != "" or method.routing_key != queue or method.redelivered:
        fail("%s: exchange %r, routing key %r, redelivered %r" % (
            what, method.exchange, method.routing_key, method.redelivered))
    if props.content_type != CONTENT_TYPE:
        fail("%s: content_type %r" % (what, props.content_type))
    records = salvo_records(props, body)
    raw = sum(4 + len(r) for r in records)
    if props.content_encoding != encoding and \
            not (props.content_encoding is None and raw <= SMALL_ENVELOPE):
        fail("%s: content_encoding %r for %d bytes of records, wanted %r" % (
            what, props.content_encoding, raw, encoding))
    for name, want in want_props.items():
        check("%s: property %s" % (what, name), getattr(props, name), want)
    headers = dict(props.headers)
    check("%s: x-salvo-records" % what, headers.pop("x-salvo-records", None), len(records))
    check("%s: the other header keys (in order)" % what, list(headers), list(want_headers))
    for key, want in want_headers.items():
        check("%s: header %s" % (what, key), headers[key], want)
    return records


def check_records(got, want, envelopes):
    if len(got) != len(want):
        fail("%d records read from %d envelopes, %d published" % (
            len(got), envelopes, len(want)))
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            at = next((j for j, (x, y) in enumerate(zip(g, w)) if x != y), min(len(g), len(w)))
            fail("record %d (%d bytes, %d published) differs from byte %d: %r, published %r"
                 % (i, len(g), len(w), at, g[at:at + 40], w[at:at + 40]))
    if envelopes * 20 > len(want):
        fail("%d envelopes for %d records: not batched" % (envelopes, len(want)))


def publish_lines(uri, salvo_publish, queue, compression, records):
    """salvo-publish's JSON summary of publishing records, one per line of its input."""
    args = [salvo_publish, "--uri", uri, "-r", queue, "--persistent", "--confirm", "async",
            "--batch-records", str(BATCH_RECORDS), "--batch-bytes", str(BATCH_BYTES),
            "--linger-us", str(LINGER_US), "--json"]
    if compression != "none":
        args += ["--compression", compression]
    run = subprocess.run(args, input=b"".join(r + b"\n" for r in records),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if run.returncode != 0:
        fail("salvo-publish exited with %d:\n%s" % (run.returncode, run.stderr.decode()))
    summary = json.loads(run.stdout.decode().splitlines()[-1])
    if summary["sent"] != len(records) or summary["acked"] != len(records):
        fail("salvo-publish sent %d and had %d acked of %d records" % (
            summary["sent"], summary["acked"], len(records)))
    return summary


def case_lines(compression):
    """salvo-publish's envelopes consumed by pika (basic_consume), record for record."""
    def run(uri, salvo_publish, _):
        queue = "salvo.test.batch.pika." + compression
        encoding = None if compression == "none" else compression
        want = line_records(10000)
        conn = pika.BlockingConnection(pika.URLParameters(uri))
        try:
            fresh_queue(conn, queue)
            summary = publish_lines(uri, salvo_publish, queue, compression, want)
            stored = queue_count(conn, queue)
            if stored != summary["envelopes"]:
                fail("the queue holds %d messages, salvo-publish sent %d envelopes" % (
                    stored, summary["envelopes"]))
            ch = conn.channel()
            ch.basic_qos(prefetch_count=100)
            got, wire, envelopes, plain = [], 0, 0, 0
            for method, props, body in ch.consume(queue, inactivity_timeout=10):
                if method is None:
                    fail("no delivery for 10 s after %d of %d envelopes" % (envelopes, stored))
                envelopes += 1
                records = check_envelope("envelope %d" % envelopes, method, props, body,
                                         queue, encoding, {"delivery_mode": 2}, {})
                raw = sum(4 + len(r) for r in records)
                if len(records) > BATCH_RECORDS or raw > BATCH_BYTES:
                    fail("envelope %d: %d records, %d bytes: over --batch-records %d or "
                         "--batch-bytes %d" % (envelopes, len(records), raw, BATCH_RECORDS,
                                               BATCH_BYTES))
                got += records
                wire += len(body)
                plain += props.content_encoding is None
                ch.basic_ack(method.delivery_tag)
                if envelopes == stored:
                    break
            ch.cancel()
            ch.close()
            check_records(got, want, envelopes)
            raw = sum(4 + len(r) for r in got)
            if (summary["envelope_bytes"], summary["envelope_raw_bytes"]) != (wire, raw):
                fail("salvo-publish counts %d bytes sent (%d before compression); the "
                     "envelopes hold %d (%d)" % (summary["envelope_bytes"],
                                                 summary["envelope_raw_bytes"], wire, raw))
            print("%s: %d records in %d envelopes (%.1f records each, %d plain), %d bytes "
                  "of records as %d on the wire (%.2f bytes a record)" % (
                      compression, len(got), envelopes, len(got) / envelopes, plain, raw,
                      wire, wire / len(got)))
        finally:
            conn.channel().queue_delete(queue)
            conn.close()
    return run


def case_properties(uri, _, batch_pika_publish):
    """Envelopes of records published with every property and header, read by pika
    (basic_get): plain, lz4 and zstd."""
    queue = "salvo.test.batch.pika.properties"
    want = binary_records(2000)
    want_props = {k: v for k, v in SAMPLE_PROPS.items()
                  if k not in ("content_type", "content_encoding")}
    conn = pika.BlockingConnection(pika.URLParameters(uri))
    try:
        for compression in ("none", "lz4", "zstd"):
            encoding = None if compression == "none" else compression
            fresh_queue(conn, queue)
            run = subprocess.run([batch_pika_publish, queue, compression],
                                 input=b"".join(struct.pack(">I", len(r)) + r for r in want),
                                 stdout=subprocess.PIPE, check=True, timeout=60)
            sent = run.stdout.decode().split()
            if sent[:2] != ["records", str(len(want))]:
                fail("batch_pika_publish printed %r" % run.stdout)
            ch = conn.channel()
            got, wire, envelopes, plain = [], 0, 0, 0
            while True:
                method, props, body = ch.basic_get(queue, auto_ack=True)
                if method is None:
                    break
                envelopes += 1
                got += check_envelope("%s envelope %d" % (compression, envelopes), method,
                                      props, body, queue, encoding, want_props,
                                      SAMPLE_HEADERS)
                wire += len(body)
                plain += props.content_encoding is None
            ch.close()
            if envelopes != int(sent[3]):
                fail("%d envelopes in the queue, %s sent" % (envelopes, sent[3]))
            check_records(got, want, envelopes)
            print("properties, %s: %d records in %d envelopes (%d plain), %d bytes on the "
                  "wire" % (compression, len(got), envelopes, plain, wire))
    finally:
        conn.channel().queue_delete(queue)
        conn.close()


def main(cases):
    if sys.argv[1:] == ["--list"]:
        print("\n".join(cases))
        return 0
    name = sys.argv[1]
    if name not in cases:
        fail("no case named %r" % name)
    uri = os.environ.get("SALVO_TEST_URI")
    if not uri:
        print("SALVO_TEST_URI not set: no broker to test against", file=sys.stderr)
        return 77
    cases[name](uri, sys.argv[2], sys.argv[3])
    return 0


sys.exit(main({
    "plain": case_lines("none"),
    "lz4": case_lines("lz4"),
    "zstd": case_lines("zstd"),
    "properties": case_properties,
}))
