#!/usr/bin/python3
"""Publish N messages of B bytes with pika (Debian's python3-pika), best effort, the way
salvo-publish --count N --size B does, and print one JSON line with the rate and the
client's CPU cost, for comparing the two against the same broker:

    bench/peers/pika_publish.py amqp://guest:guest@127.0.0.1:5679/%2F 1000000 100

Bodies start with their sequence number (8 bytes, big-endian), like salvo-publish's.
"""
import resource
import struct
import sys
import time

import pika


def main():
    uri, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    conn = pika.BlockingConnection(pika.URLParameters(uri))
    ch = conn.channel()
    ch.queue_declare(queue="pika.bench")
    ch.queue_purge(queue="pika.bench")
    pad = b"x" * max(size - 8, 0)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    for i in range(count):
        ch.basic_publish(exchange="", routing_key="pika.bench",
                         body=(struct.pack(">Q", i) + pad)[:size])
    conn.close()  # returns once everything is written
    secs = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru.ru_utime - ru0.ru_utime) + (ru.ru_stime - ru0.ru_stime)
    print('{"client": "pika %s", "sent": %d, "seconds": %.3f, "msgs_per_s": %.0f, '
          '"cpu_seconds": %.3f, "cpu_us_per_msg": %.2f}'
          % (pika.__version__, count, secs, count / secs, cpu, cpu / count * 1e6))


if __name__ == "__main__":
    main()
