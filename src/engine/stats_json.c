/* SPDX-License-Identifier: MIT */
/*
 * A statistics snapshot as one JSON document, the statistics callback's. The schema is
 * docs/statistics.md; field names are stable, figures are plain integers (counts, bytes,
 * milliseconds or nanoseconds as the name says), strings only name things.
 */
#include <inttypes.h>

#include "engine.h"
#include "stats.h"

static const char *mode_name(salvo_confirm_mode mode)
{
	return mode == SALVO_CONFIRM_ASYNC ? "async" : mode == SALVO_CONFIRM_SYNC ? "sync" : "none";
}

static void field(struct sv_out *o, const char *name, uint64_t v, bool last)
{
	sv_out_printf(o, "\"%s\":%" PRIu64 "%s", name, v, last ? "" : ",");
}

static void string(struct sv_out *o, const char *name, const char *v)
{
	sv_out_printf(o, "\"%s\":\"", name);
	sv_out_escaped(o, v, true);
	sv_out_printf(o, "\",");
}

/* The counters every publisher has, and their sum. */
static void pub_counters(struct sv_out *o, const salvo_pub_stats *st)
{
	field(o, "published", st->published, false);
	field(o, "acked", st->acked, false);
	field(o, "nacked", st->nacked, false);
	field(o, "returned", st->returned, false);
	field(o, "failed", st->failed, false);
	field(o, "in_flight", st->in_flight, false);
	field(o, "resent", st->resent, false);
	field(o, "possibly_lost", st->possibly_lost, false);
	field(o, "returns_unmatched", st->returns_unmatched, false);
	field(o, "returns_dropped", st->returns_dropped, false);
	field(o, "envelopes", st->envelopes, false);
	field(o, "envelope_bytes", st->envelope_bytes, false);
	field(o, "envelope_raw_bytes", st->envelope_raw_bytes, false);
	field(o, "latency_count", st->latency_count, false);
	field(o, "latency_sum_ns", st->latency_sum_ns, false);
	field(o, "latency_max_ns", st->latency_max_ns, true);
}

/* Confirm latency over the interval: outcomes that came since the last document. */
static void interval_latency(struct sv_out *o, const salvo_pub_stats *iv)
{
	sv_out_printf(o, ",\"interval_latency\":{");
	field(o, "count", iv->latency_count, false);
	field(o, "p50_ns", salvo_stats_latency_ns(iv, 0.5), false);
	field(o, "p99_ns", salvo_stats_latency_ns(iv, 0.99), false);
	field(o, "p999_ns", salvo_stats_latency_ns(iv, 0.999), false);
	field(o, "max_ns", iv->latency_max_ns, true);
	sv_out_printf(o, "}");
}

void sv_stats_json(const struct sv_stats_snap *s, struct sv_out *o)
{
	sv_out_printf(o, "{");
	field(o, "schema", 1, false);
	string(o, "name", s->name);
	field(o, "time_ms", s->time_ms, false);
	field(o, "seq", s->seq, false);
	field(o, "interval_ms", s->interval_ms, false);
	field(o, "incomplete", s->incomplete, false);

	sv_out_printf(o, "\"connection\":{");
	string(o, "state", s->state);
	string(o, "endpoint", s->endpoint);
	field(o, "reconnects", s->reconnects, false);
	field(o, "blocked", s->blocked, false);
	field(o, "blocked_ms", s->blocked_ms, false);
	field(o, "events_dropped", s->events_dropped, true);

	sv_out_printf(o, "},\"io\":{");
	field(o, "turns", s->io.turns, false);
	field(o, "waits", s->io.waits, false);
	field(o, "submits", s->io.submits, false);
	field(o, "sends", s->io.sends, false);
	field(o, "send_bytes", s->io.send_bytes, false);
	field(o, "recvs", s->io.recvs, false);
	field(o, "recv_bytes", s->io.recv_bytes, false);
	field(o, "wakeups", s->io.wakeups, false);
	field(o, "kicks", s->io.kicks, false);
	field(o, "ack_holds", s->io.ack_holds, true);

	sv_out_printf(o, "},\"publishing\":{");
	pub_counters(o, &s->total);
	interval_latency(o, &s->interval);
	sv_out_printf(o, "},\"closed_publishers\":{");
	pub_counters(o, &s->closed);
	sv_out_printf(o, "},\"publishers\":[");
	for (size_t i = 0; i < s->npubs; i++) {
		const struct sv_stats_pub *p = &s->pubs[i];

		sv_out_printf(o, "%s{", i ? "," : "");
		field(o, "channel", p->channel, false);
		string(o, "confirm", mode_name(p->mode));
		pub_counters(o, &p->st);
		interval_latency(o, &p->interval);
		sv_out_printf(o, "}");
	}

	sv_out_printf(o, "],\"consuming\":{");
	field(o, "delivered", s->consume.delivered, false);
	field(o, "buffered_bytes", s->consume.buffered_bytes, false);
	field(o, "buffered_peak", s->consume.buffered_peak, false);
	field(o, "read_holds", s->consume.read_holds, false);
	field(o, "settles", s->consume.settles, false);
	field(o, "settle_frames", s->consume.settle_frames, false);
	field(o, "settles_dropped", s->consume.settles_dropped, false);
	field(o, "handovers", s->consume.handovers, false);
	field(o, "envelopes", s->consume.envelopes, false);
	field(o, "records", s->consume.records, false);
	field(o, "envelopes_rejected", s->consume.envelopes_rejected, false);
	field(o, "stream_holds", s->consume.stream_holds, true);
	sv_out_printf(o, "},\"consumers\":[");
	for (size_t i = 0; i < s->ncons; i++) {
		const struct sv_stats_cons *k = &s->cons[i];

		sv_out_printf(o, "%s{", i ? "," : "");
		field(o, "channel", k->channel, false);
		string(o, "tag", k->tag);
		field(o, "delivered", k->st.delivered, false);
		field(o, "taken", k->st.taken, false);
		field(o, "handovers", k->st.handovers, false);
		field(o, "buffered_bytes", k->st.buffered_bytes, false);
		field(o, "acks", k->st.acks, false);
		field(o, "nacks", k->st.nacks, false);
		field(o, "rejects", k->st.rejects, true);
		sv_out_printf(o, "}");
	}
	sv_out_printf(o, "]}");
}
