#!/usr/bin/python3
"""salvo-sink against pika (Debian's python3-pika): what a real client library sees.

    test_pika.py CASE SALVO_SINK

Each case starts its own sink. Exit 0 pass, 1 fail, 77 skip (pika not installed).
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sinktest import Sink, check, main  # noqa: E402

try:
    import pika
    from pika.exceptions import (ConnectionClosedByBroker, NackError,
                                 ProbableAuthenticationError, UnroutableError)
except ImportError:
    sys.stderr.write("python3-pika is not installed (scripts/setup.sh installs it)\n")
    sys.exit(77)


def connection(sink, user="guest", password="guest"):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", sink.port, credentials=pika.PlainCredentials(user, password)))


def confirming_channel(sink):
    """A new connection and a channel in confirm mode: basic_publish raises unless acked."""
    conn = connection(sink)
    ch = conn.channel()
    ch.confirm_delivery()
    return conn, ch


def confirm_count(exe):
    """1000 confirmed publishes are counted under their routing key, then purged."""
    with Sink(exe) as sink:
        conn, ch = confirming_channel(sink)
        ch.queue_declare("q.count")
        for i in range(1000):
            ch.basic_publish("", "q.count", b"%04d" % i + b"x" * 96)  # raises unless acked
        ch.basic_publish("", "q.other", b"not counted under q.count")
        declared = ch.queue_declare("q.count", passive=True).method
        check(declared.message_count == 1000, "passive declare: %d" % declared.message_count)
        check(declared.queue == "q.count", declared.queue)
        purged = ch.queue_purge("q.count").method.message_count
        check(purged == 1000, "first purge: %d" % purged)
        purged = ch.queue_purge("q.count").method.message_count
        check(purged == 0, "second purge: %d" % purged)
        deleted = ch.queue_delete("q.other").method.message_count
        check(deleted == 1, "delete q.other: %d" % deleted)
        generated = ch.queue_declare("").method.queue
        check(generated.startswith("sink.gen-"), "server-named queue %r" % generated)
        conn.close()


def topology(exe):
    """Every synchronous method a publisher may send is answered, channels open and close."""
    with Sink(exe) as sink:
        conn = connection(sink)
        ch = conn.channel()
        ch.exchange_declare("x1", "direct")
        ch.exchange_declare("x2", "fanout", passive=False, durable=True)
        ch.exchange_bind("x2", "x1", "k")
        ch.exchange_unbind("x2", "x1", "k")
        ch.queue_declare("q1", durable=True, exclusive=False, auto_delete=False)
        ch.queue_bind("q1", "x1", "k")
        ch.queue_unbind("q1", "x1", "k")
        ch.basic_qos(prefetch_count=10)
        check(ch.basic_get("q1") == (None, None, None), "basic.get must find nothing")
        ch.exchange_delete("x2")
        ch.exchange_delete("x1")
        tx = conn.channel()
        tx.tx_select()
        tx.basic_publish("", "q1", b"in a transaction")
        tx.tx_commit()
        tx.tx_rollback()
        tx.close()
        check(ch.queue_declare("q1", passive=True).method.message_count == 1, "tx publish counted")
        ch.close()
        conn.close()


def returned(exe):
    """A mandatory publish to the --return-unroutable key comes back whole: UnroutableError."""
    with Sink(exe, "--return-unroutable", "nowhere") as sink:
        conn, ch = confirming_channel(sink)
        body = bytes(range(256)) * 1200  # 300 KiB: several body frames each way
        props = pika.BasicProperties(content_type="application/x-test", message_id="m-1")
        try:
            ch.basic_publish("", "nowhere", body, props, mandatory=True)
            raise AssertionError("no UnroutableError for a mandatory publish to 'nowhere'")
        except UnroutableError as e:
            check(len(e.messages) == 1, "%d returned messages" % len(e.messages))
            msg = e.messages[0]
            check(msg.method.reply_code == 312 and msg.method.routing_key == "nowhere",
                  "basic.return %d %s" % (msg.method.reply_code, msg.method.routing_key))
            check(msg.body == body, "returned body differs")
            check(msg.properties.message_id == "m-1", "returned properties differ")
        # Not mandatory, or another key: routed as usual.
        ch.basic_publish("", "nowhere", b"dropped quietly")
        ch.basic_publish("", "somewhere", b"routed", mandatory=True)
        count = ch.queue_declare("nowhere", passive=True).method.message_count
        check(count == 1, "a returned message must not be counted: %d" % count)
        conn.close()


def nacks(exe):
    """--nack-every 10: exactly publishes 10, 20, ... 100 fail with NackError."""
    with Sink(exe, "--nack-every", "10") as sink:
        conn, ch = confirming_channel(sink)
        nacked = []
        for i in range(1, 101):
            try:
                ch.basic_publish("", "q.nack", b"m%d" % i)
            except NackError:
                nacked.append(i)
        check(nacked == list(range(10, 101, 10)), "nacked: %r" % nacked)
        # Other channels number their tags on their own.
        ch2 = conn.channel()
        ch2.confirm_delivery()
        ch2.basic_publish("", "q.nack", b"tag 1 of channel 2")
        conn.close()


def close_after(exe):
    """--close-after 25: publishes 1-24 are confirmed, then connection.close 320."""
    with Sink(exe, "--close-after", "25") as sink:
        conn, ch = confirming_channel(sink)
        confirmed = 0
        try:
            for i in range(1, 101):
                ch.basic_publish("", "q.close", b"m%d" % i)
                confirmed += 1
            raise AssertionError("the connection was not closed")
        except ConnectionClosedByBroker as e:
            check(e.reply_code == 320, "reply code %d" % e.reply_code)
            check("CONNECTION_FORCED" in e.reply_text, e.reply_text)
        # The 25th message's ack and the close arrive together; pika may report either.
        check(confirmed in (24, 25), "confirmed %d before the close" % confirmed)
        # Other connections are not affected.
        conn = connection(sink)
        conn.channel().basic_publish("", "q.close", b"after")
        conn.close()


def auth(exe):
    """--user/--password: a wrong password is refused with 403, the right one connects."""
    with Sink(exe, "--user", "alice", "--password", "s3cret") as sink:
        for user, password in (("alice", "wrong"), ("bob", "s3cret")):
            try:
                connection(sink, user, password).close()
                raise AssertionError("%s/%s was let in" % (user, password))
            except ProbableAuthenticationError as e:
                check("403" in str(e) and "ACCESS_REFUSED" in str(e), str(e))
            except ConnectionClosedByBroker as e:
                check(e.reply_code == 403, "reply code %d" % e.reply_code)
        conn = connection(sink, "alice", "s3cret")
        conn.channel().basic_publish("", "q", b"welcome")
        conn.close()
        check("s3cret" not in sink.log(), "the password appears in the log")


if __name__ == "__main__":
    main({
        "confirm-count": confirm_count,
        "topology": topology,
        "return": returned,
        "nack": nacks,
        "close-after": close_after,
        "auth": auth,
    })
