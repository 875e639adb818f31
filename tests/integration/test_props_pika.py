#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Message properties between salvo and pika (Debian's python3-pika) through RabbitMQ.

salvo -> pika: test_props (argv[1]) publishes the sample message of props_sample.h; pika
reads it, with basic_get and then with a consumer (basic_consume), and every property and
header is compared with the sample, as pika decodes it. pika -> salvo: pika publishes with
every property and a header of every type pika encodes; `test_props dump` reads it with
salvo_basic_get, and `test_consume dump` (argv[2]) with a salvo consumer, each printing
canonical text compared line by line with what pika sent.

Needs SALVO_TEST_URI; exits 77 (skip) without it or without pika. test_batch_pika.py
imports SAMPLE_PROPS, SAMPLE_HEADERS and check: importing this file runs no test.
"""
import datetime
import decimal
import os
import subprocess
import sys

try:
    import pika
except ImportError:
    print("python3-pika is not installed", file=sys.stderr)
    sys.exit(77)

QUEUE = "salvo.test.props.pika"


def fail(what, got, want):
    print(f"{what}: got {got!r}, wanted {want!r}", file=sys.stderr)
    sys.exit(1)


def check(what, got, want):
    # The type too: True == 1 and 1.0 == 1 in Python, but they are different field
    # types. (pika returns its own int subclass, "long", for 64-bit integers.)
    if got != want or not isinstance(got, type(want)) or \
            isinstance(got, bool) != isinstance(want, bool):
        fail(what, got, want)


# The sample of props_sample.h as pika 1.2 decodes it. pika's decoder reads 'b' as
# unsigned and 'B' as signed, 'L' as signed and 'l' as unsigned, turns 'f' and 'd' into
# integers (pika/data.py decode_value), and decodes 'S' to str but keeps 'x' as bytes; the
# expected values below are those readings of the exact wire values salvo wrote.
SAMPLE_PROPS = {
    "content_type": "application/json",
    "content_encoding": "gzip",
    "delivery_mode": 2,
    "priority": 7,
    "correlation_id": "corr-42",
    "reply_to": "replies",
    "expiration": "60000",
    "message_id": "msg-0001",
    "timestamp": 1700000123,
    "type": "order.created",
    "user_id": "guest",
    "app_id": "salvo-test",
    "cluster_id": "cluster-9",
}
SAMPLE_HEADERS = {
    "bool": True,
    "i8": 256 - 8,                      # 'b' -8, read unsigned by pika
    "u8": 0xF8 - 256,                   # 'B' 248, read signed by pika
    "i16": -16000,
    "u16": 0xFEDC,
    "i32": -2000000000,
    "u32": 0xFEDCBA98,
    "i64": (-(2**63) + 7) % 2**64,      # 'l', read unsigned by pika
    "u64": 0x7FEDCBA987654321,          # 'L', read signed by pika (positive here)
    "float": 1,                         # 'f' 1.5, truncated by pika
    "double": -2,                       # 'd' -2.25, truncated by pika
    "decimal": decimal.Decimal("123.45"),
    "string": "h\u00e9llo w\u00f6rld",
    "bytes": b"\x00\xff\x10\x80",
    "timestamp": datetime.datetime(2023, 11, 14, 22, 13, 20),
    "void": None,
    "table": {"inner": "x", "n": 7},
    "array": [1, "two", None, [True]],
}


def salvo_to_pika(conn, test_props, env, consume):
    ch = conn.channel()
    ch.queue_purge(QUEUE)
    subprocess.run([test_props, "publish", QUEUE], env=env, check=True)
    if consume:
        method, props, body = next(ch.consume(QUEUE, auto_ack=True, inactivity_timeout=10))
        ch.cancel()
    else:
        method, props, body = ch.basic_get(QUEUE, auto_ack=True)
    if method is None:
        fail("salvo's message", None, "a message")
    check("body", body, b"from salvo")
    for name, want in SAMPLE_PROPS.items():
        check(f"property {name}", getattr(props, name), want)
    check("header keys (in order)", list(props.headers), list(SAMPLE_HEADERS))
    for key, want in SAMPLE_HEADERS.items():
        check(f"header {key}", props.headers[key], want)
    ch.close()


# What pika publishes, and what `test_props dump` must print for it: pika encodes str as
# 'S', bytes 'x', bool 't', ints 'I' (or 'l' beyond 32 bits), Decimal 'D', datetime 'T',
# dict 'F', list 'A', None 'V'; pika 1.2 cannot encode a float at all.
PIKA_PROPS = pika.BasicProperties(
    content_type="text/plain",
    content_encoding="utf-8",
    headers={
        "s": "caf\u00e9",
        "x": b"\x00\x01\xfe",
        "t": False,
        "I": -123456,
        "l": -(2**40) - 1,
        "D": decimal.Decimal("-1.5"),
        "T": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "F": {"k": "v", "deeper": {"n": 1}},
        "A": ["a", 2, [None]],
        "V": None,
    },
    delivery_mode=1,
    priority=3,
    correlation_id="pika-corr",
    reply_to="pika-replies",
    expiration="120000",
    message_id="pika-msg-1",
    timestamp=1712345678,
    type="pika.type",
    user_id="guest",
    app_id="pika-app",
    cluster_id="pika-cluster",
)

PIKA_EXPECTED = """content_type=text/plain
content_encoding=utf-8
correlation_id=pika-corr
reply_to=pika-replies
expiration=120000
message_id=pika-msg-1
type=pika.type
user_id=guest
app_id=pika-app
cluster_id=pika-cluster
delivery_mode=1
priority=3
timestamp=1712345678
headers
h s S 636166c3a9
h x x 0001fe
h t t 0
h I I -123456
h l l -1099511627777
h D D 1/4294967281
h T T 1704164645
h F F -
h F/k S 76
h F/deeper F -
h F/deeper/n I 1
h A A -
h A[0] S 61
h A[1] I 2
h A[2] A -
h A[2][0] V 
h V V 
"""
# 'D': pika packs Decimal("-1.5") as scale 1 and the signed 32-bit -15; salvo, like
# RabbitMQ, reads the value unsigned: 2^32 - 15.


def pika_to_salvo(conn, reader, env):
    ch = conn.channel()
    ch.queue_purge(QUEUE)
    ch.basic_publish("", QUEUE, b"from pika", PIKA_PROPS)
    out = subprocess.run([reader, "dump", QUEUE], env=env, check=True,
                         capture_output=True, text=True).stdout
    got, want = out.splitlines(), PIKA_EXPECTED.splitlines()
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            fail(f"salvo's reading of pika's message, line {i + 1}", g, w)
    check("lines in salvo's reading of pika's message", len(got), len(want))
    ch.close()


def main():
    uri = os.environ.get("SALVO_TEST_URI")
    if not uri:
        print("SALVO_TEST_URI not set: no broker to test against", file=sys.stderr)
        return 77
    test_props, test_consume = sys.argv[1], sys.argv[2]
    conn = pika.BlockingConnection(pika.URLParameters(uri))
    ch = conn.channel()
    ch.queue_declare(QUEUE)
    try:
        salvo_to_pika(conn, test_props, os.environ, consume=False)
        salvo_to_pika(conn, test_props, os.environ, consume=True)
        pika_to_salvo(conn, test_props, os.environ)
        pika_to_salvo(conn, test_consume, os.environ)
    finally:
        ch.queue_delete(QUEUE)
        conn.close()
    print("salvo -> pika (get, consume) and pika -> salvo (get, consumer): ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
