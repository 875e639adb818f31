/* SPDX-License-Identifier: MIT */
/*
 * Statistics snapshots in the Prometheus text exposition format 0.0.4: each metric once
 * with its HELP and TYPE, then its series for every client (label connection), publisher
 * (channel; the closed publishers' sums as channel="closed", so a counter summed over
 * publishers never goes down when one closes) and consumer (channel, consumer). The
 * metric list is docs/statistics.md.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>

#include "engine.h"
#include "stats.h"

struct metric {
	const char *name, *type, *help;
	size_t off; /* of a uint64_t in the figures' struct */
};

#define FIG(st, x) (*(const uint64_t *)((const char *)(st) + (x)))

static const struct metric io_metrics[] = {
	{"salvo_io_turns_total", "counter", "Turns of the I/O thread's loop.",
	 offsetof(salvo_io_stats, turns)},
	{"salvo_io_waits_total", "counter", "io_uring_enter calls that waited for a completion.",
	 offsetof(salvo_io_stats, waits)},
	{"salvo_io_submits_total", "counter", "io_uring_enter calls that only submitted.",
	 offsetof(salvo_io_stats, submits)},
	{"salvo_io_sends_total", "counter", "Socket sends completed.",
	 offsetof(salvo_io_stats, sends)},
	{"salvo_io_sent_bytes_total", "counter", "Bytes the socket sends took.",
	 offsetof(salvo_io_stats, send_bytes)},
	{"salvo_io_recvs_total", "counter", "Socket receives completed.",
	 offsetof(salvo_io_stats, recvs)},
	{"salvo_io_received_bytes_total", "counter", "Bytes the socket receives brought.",
	 offsetof(salvo_io_stats, recv_bytes)},
	{"salvo_io_wakeups_total", "counter", "Times the application woke the I/O thread.",
	 offsetof(salvo_io_stats, wakeups)},
	{"salvo_io_kicks_total", "counter", "Wake-up writes of application threads.",
	 offsetof(salvo_io_stats, kicks)},
	{"salvo_io_ack_holds_total", "counter",
	 "Small reads of publisher acks after which the next read was held back.",
	 offsetof(salvo_io_stats, ack_holds)},
};

static const struct metric pub_metrics[] = {
	{"salvo_publisher_published_total", "counter", "Messages published.",
	 offsetof(salvo_pub_stats, published)},
	{"salvo_publisher_acked_total", "counter", "Messages the broker confirmed (basic.ack).",
	 offsetof(salvo_pub_stats, acked)},
	{"salvo_publisher_nacked_total", "counter", "Messages the broker refused (basic.nack).",
	 offsetof(salvo_pub_stats, nacked)},
	{"salvo_publisher_returned_total", "counter", "Mandatory messages returned unroutable.",
	 offsetof(salvo_pub_stats, returned)},
	{"salvo_publisher_failed_total", "counter", "Messages that failed without an outcome.",
	 offsetof(salvo_pub_stats, failed)},
	{"salvo_publisher_in_flight", "gauge", "Messages published, outcome not yet known.",
	 offsetof(salvo_pub_stats, in_flight)},
	{"salvo_publisher_resent_total", "counter",
	 "Messages sent again after a reconnection (possible duplicates).",
	 offsetof(salvo_pub_stats, resent)},
	{"salvo_publisher_possibly_lost_total", "counter",
	 "Best effort: messages sent after the last proof the broker had them, on a lost "
	 "connection.",
	 offsetof(salvo_pub_stats, possibly_lost)},
	{"salvo_publisher_returns_unmatched_total", "counter",
	 "Returns not tied to a message.", offsetof(salvo_pub_stats, returns_unmatched)},
	{"salvo_publisher_returns_dropped_total", "counter",
	 "Returns whose content was dropped for publisher.returns.max_bytes.",
	 offsetof(salvo_pub_stats, returns_dropped)},
	{"salvo_publisher_envelopes_total", "counter", "Batching: envelopes sent.",
	 offsetof(salvo_pub_stats, envelopes)},
	{"salvo_publisher_envelope_bytes_total", "counter",
	 "Batching: envelope bodies as sent (compressed).",
	 offsetof(salvo_pub_stats, envelope_bytes)},
	{"salvo_publisher_envelope_raw_bytes_total", "counter",
	 "Batching: envelope bodies before compression.",
	 offsetof(salvo_pub_stats, envelope_raw_bytes)},
};

static const struct metric consume_metrics[] = {
	{"salvo_consume_delivered_total", "counter", "Deliveries assembled for consumers.",
	 offsetof(salvo_consume_stats, delivered)},
	{"salvo_consume_buffered_bytes", "gauge",
	 "Bytes delivered to consumers, not yet taken by the application.",
	 offsetof(salvo_consume_stats, buffered_bytes)},
	{"salvo_consume_buffered_peak_bytes", "gauge", "The most buffered_bytes has been.",
	 offsetof(salvo_consume_stats, buffered_peak)},
	{"salvo_consume_read_holds_total", "counter",
	 "Times reads were held for consumer.buffer_bytes.",
	 offsetof(salvo_consume_stats, read_holds)},
	{"salvo_consume_settles_total", "counter", "Acks, nacks and rejects asked for.",
	 offsetof(salvo_consume_stats, settles)},
	{"salvo_consume_settle_frames_total", "counter", "basic.ack/nack/reject frames sent.",
	 offsetof(salvo_consume_stats, settle_frames)},
	{"salvo_consume_settles_dropped_total", "counter",
	 "Settles for a channel closed before they were sent.",
	 offsetof(salvo_consume_stats, settles_dropped)},
	{"salvo_consume_handovers_total", "counter", "Batches of deliveries queued at once.",
	 offsetof(salvo_consume_stats, handovers)},
	{"salvo_consume_envelopes_total", "counter", "Envelopes split into records.",
	 offsetof(salvo_consume_stats, envelopes)},
	{"salvo_consume_records_total", "counter", "Records of split envelopes.",
	 offsetof(salvo_consume_stats, records)},
	{"salvo_consume_envelopes_rejected_total", "counter", "Malformed envelopes rejected.",
	 offsetof(salvo_consume_stats, envelopes_rejected)},
	{"salvo_consume_stream_holds_total", "counter",
	 "Reads held back for a stream of deliveries.",
	 offsetof(salvo_consume_stats, stream_holds)},
};

static const struct metric consumer_metrics[] = {
	{"salvo_consumer_delivered_total", "counter", "Deliveries queued for the consumer.",
	 offsetof(salvo_consumer_stats, delivered)},
	{"salvo_consumer_taken_total", "counter", "Messages the application took.",
	 offsetof(salvo_consumer_stats, taken)},
	{"salvo_consumer_handovers_total", "counter", "Batches queued at once.",
	 offsetof(salvo_consumer_stats, handovers)},
	{"salvo_consumer_buffered_bytes", "gauge", "Bytes queued, not yet taken.",
	 offsetof(salvo_consumer_stats, buffered_bytes)},
	{"salvo_consumer_acks_total", "counter",
	 "Acks asked of messages taken from it (calls: a multiple ack counts once).",
	 offsetof(salvo_consumer_stats, acks)},
	{"salvo_consumer_nacks_total", "counter",
	 "Nacks asked of messages taken from it (calls: a multiple nack counts once).",
	 offsetof(salvo_consumer_stats, nacks)},
	{"salvo_consumer_rejects_total", "counter", "Rejects asked of messages taken from it.",
	 offsetof(salvo_consumer_stats, rejects)},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void header(struct sv_out *o, const char *name, const char *type, const char *help)
{
	sv_out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void conn_label(struct sv_out *o, const char *name, const struct sv_stats_snap *s)
{
	sv_out_printf(o, "%s{connection=\"", name);
	sv_out_escaped(o, s->name, false);
	sv_out_printf(o, "\"");
}

static void value(struct sv_out *o, uint64_t v)
{
	sv_out_printf(o, "} %" PRIu64 "\n", v);
}

static void connection_metrics(const struct sv_stats_snap *snaps, size_t n, struct sv_out *o)
{
	header(o, "salvo_connection_info", "gauge",
	       "1, labelled with the connection's state and endpoint (host:port).");
	for (size_t k = 0; k < n; k++) {
		conn_label(o, "salvo_connection_info", &snaps[k]);
		sv_out_printf(o, ",state=\"%s\",endpoint=\"", snaps[k].state);
		sv_out_escaped(o, snaps[k].endpoint, false);
		sv_out_printf(o, "\"");
		value(o, 1);
	}
	header(o, "salvo_connection_up", "gauge", "1 while the connection is open, else 0.");
	for (size_t k = 0; k < n; k++) {
		conn_label(o, "salvo_connection_up", &snaps[k]);
		value(o, snaps[k].state[0] == 'o');
	}
	header(o, "salvo_connection_reconnects_total", "counter", "Reconnections.");
	for (size_t k = 0; k < n; k++) {
		conn_label(o, "salvo_connection_reconnects_total", &snaps[k]);
		value(o, snaps[k].reconnects);
	}
	header(o, "salvo_connection_blocked", "gauge",
	       "1 while the broker blocks the connection (connection.blocked), else 0.");
	for (size_t k = 0; k < n; k++) {
		conn_label(o, "salvo_connection_blocked", &snaps[k]);
		value(o, snaps[k].blocked);
	}
	header(o, "salvo_connection_blocked_seconds_total", "counter",
	       "Time the broker has blocked the connection.");
	for (size_t k = 0; k < n; k++) {
		conn_label(o, "salvo_connection_blocked_seconds_total", &snaps[k]);
		sv_out_printf(o, "} %.3f\n", (double)snaps[k].blocked_ms / 1000.0);
	}
	header(o, "salvo_events_dropped_total", "counter",
	       "Events dropped from the client's full event queue.");
	for (size_t k = 0; k < n; k++) {
		conn_label(o, "salvo_events_dropped_total", &snaps[k]);
		value(o, snaps[k].events_dropped);
	}
}

static void pub_label(struct sv_out *o, const char *name, const struct sv_stats_snap *s,
		      const struct sv_stats_pub *p)
{
	conn_label(o, name, s);
	if (p)
		sv_out_printf(o, ",channel=\"%u\"", p->channel);
	else
		sv_out_printf(o, ",channel=\"closed\"");
}

/* Cumulative buckets at each power of two from 1.024 us to 68.7 s: the histogram's
 * buckets 8k + 7 end just below 2^(k + 3) ns. */
#define LE_FIRST 7
#define LE_LAST 33

static void latency_histogram(const struct sv_stats_snap *snaps, size_t n, struct sv_out *o)
{
	static const char name[] = "salvo_publisher_confirm_latency_seconds";

	header(o, name, "histogram",
	       "Publish-to-outcome time: every message in sync mode, one in 16 in async mode.");
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i <= snaps[k].npubs; i++) {
			const struct sv_stats_pub *p = i < snaps[k].npubs ? &snaps[k].pubs[i] : NULL;
			const salvo_pub_stats *st = p ? &p->st : &snaps[k].closed;
			uint64_t seen = 0;
			unsigned b = 0;

			for (unsigned e = LE_FIRST; e <= LE_LAST; e++) {
				for (; b <= 8 * e + 7; b++)
					seen += st->latency[b];
				pub_label(o, "salvo_publisher_confirm_latency_seconds_bucket", &snaps[k],
					  p);
				sv_out_printf(o, ",le=\"%.10g\"} %" PRIu64 "\n",
					      (double)(1ull << (e + 3)) / 1e9, seen);
			}
			pub_label(o, "salvo_publisher_confirm_latency_seconds_bucket", &snaps[k], p);
			sv_out_printf(o, ",le=\"+Inf\"} %" PRIu64 "\n", st->latency_count);
			pub_label(o, "salvo_publisher_confirm_latency_seconds_sum", &snaps[k], p);
			sv_out_printf(o, "} %.9f\n", (double)st->latency_sum_ns / 1e9);
			pub_label(o, "salvo_publisher_confirm_latency_seconds_count", &snaps[k], p);
			value(o, st->latency_count);
		}
}

void sv_stats_prom(const struct sv_stats_snap *snaps, size_t n, struct sv_out *o)
{
	connection_metrics(snaps, n, o);
	for (size_t m = 0; m < COUNT(io_metrics); m++) {
		header(o, io_metrics[m].name, io_metrics[m].type, io_metrics[m].help);
		for (size_t k = 0; k < n; k++) {
			conn_label(o, io_metrics[m].name, &snaps[k]);
			value(o, FIG(&snaps[k].io, io_metrics[m].off));
		}
	}
	for (size_t m = 0; m < COUNT(pub_metrics); m++) {
		const struct metric *mt = &pub_metrics[m];
		bool gauge = mt->type[0] == 'g';

		header(o, mt->name, mt->type, mt->help);
		for (size_t k = 0; k < n; k++) {
			for (size_t i = 0; i < snaps[k].npubs; i++) {
				pub_label(o, mt->name, &snaps[k], &snaps[k].pubs[i]);
				value(o, FIG(&snaps[k].pubs[i].st, mt->off));
			}
			/* Closed publishers have nothing in flight. */
			if (!gauge) {
				pub_label(o, mt->name, &snaps[k], NULL);
				value(o, FIG(&snaps[k].closed, mt->off));
			}
		}
	}
	latency_histogram(snaps, n, o);
	for (size_t m = 0; m < COUNT(consume_metrics); m++) {
		header(o, consume_metrics[m].name, consume_metrics[m].type, consume_metrics[m].help);
		for (size_t k = 0; k < n; k++) {
			conn_label(o, consume_metrics[m].name, &snaps[k]);
			value(o, FIG(&snaps[k].consume, consume_metrics[m].off));
		}
	}
	for (size_t m = 0; m < COUNT(consumer_metrics); m++) {
		const struct metric *mt = &consumer_metrics[m];

		header(o, mt->name, mt->type, mt->help);
		for (size_t k = 0; k < n; k++)
			for (size_t i = 0; i < snaps[k].ncons; i++) {
				const struct sv_stats_cons *c = &snaps[k].cons[i];

				conn_label(o, mt->name, &snaps[k]);
				sv_out_printf(o, ",channel=\"%u\",consumer=\"", c->channel);
				sv_out_escaped(o, c->tag, false);
				sv_out_printf(o, "\"");
				value(o, FIG(&c->st, mt->off));
			}
	}
	header(o, "salvo_stats_incomplete", "gauge",
	       "1 when memory ran out listing publishers and consumers, else 0.");
	for (size_t k = 0; k < n; k++) {
		conn_label(o, "salvo_stats_incomplete", &snaps[k]);
		value(o, snaps[k].incomplete);
	}
}

size_t salvo_stats_prometheus_clients(salvo_client *const *clients, size_t n, char *buf,
				      size_t len)
{
	struct sv_out o = {.buf = buf, .cap = buf ? len : 0};
	struct sv_stats_snap *snaps = n ? calloc(n, sizeof *snaps) : NULL;

	if (buf && len)
		buf[0] = '\0';
	for (size_t k = 0; clients && k < n; k++)
		if (!clients[k])
			clients = NULL;
	if (!clients || (n && !snaps)) {
		free(snaps);
		return 0;
	}
	for (size_t k = 0; k < n; k++)
		sv_stats_take(clients[k], &snaps[k], false);
	sv_stats_prom(snaps, n, &o);
	for (size_t k = 0; k < n; k++)
		sv_stats_release(&snaps[k]);
	free(snaps);
	return o.len;
}

size_t salvo_stats_prometheus(salvo_client *c, char *buf, size_t len)
{
	if (!c) {
		if (buf && len)
			buf[0] = '\0';
		return 0;
	}
	return salvo_stats_prometheus_clients(&c, 1, buf, len);
}
