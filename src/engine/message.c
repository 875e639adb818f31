/* SPDX-License-Identifier: MIT */
/*
 * A received message (basic.get or a delivery), or a record of an envelope a consumer
 * split: read-only accessors, any thread, and its end. Every handle holds its delivery,
 * which holds the channel (for acks), so the channel outlives the handle until every
 * message is destroyed. Settling it is consumer.c's (salvo_message_ack and friends).
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "envelope.h"

const void *salvo_message_body(const salvo_message *m, size_t *len)
{
	if (len)
		*len = m->len;
	return m->body;
}

const char *salvo_message_exchange(const salvo_message *m)
{
	return m->d->exchange;
}

const char *salvo_message_routing_key(const salvo_message *m)
{
	return m->d->routing_key;
}

uint64_t salvo_message_delivery_tag(const salvo_message *m)
{
	return m->d->delivery_tag;
}

bool salvo_message_redelivered(const salvo_message *m)
{
	return m->d->redelivered;
}

uint32_t salvo_message_count(const salvo_message *m)
{
	return m->d->message_count;
}

const char *salvo_message_consumer_tag(const salvo_message *m)
{
	return m->d->consumer_tag;
}

const salvo_props *salvo_message_props(const salvo_message *m)
{
	return &m->d->props;
}

uint32_t salvo_message_record_index(const salvo_message *m)
{
	return m->index;
}

uint32_t salvo_message_record_count(const salvo_message *m)
{
	return m->d->env ? sv_envelope_count(m->d->env) : 1;
}

int salvo_message_stream_offset(const salvo_message *m, uint64_t *offset)
{
	static const char key[] = "x-stream-offset";
	salvo_table_iter it;
	salvo_field f;
	int64_t v;
	int rc;

	if (!m || !offset)
		return SALVO_ERR_INVALID_ARGUMENT;
	salvo_table_iter_init(&it, m->d->props.headers);
	while ((rc = salvo_table_next(&it, &f)) == 1) {
		if (f.key_len != sizeof key - 1 || memcmp(f.key, key, sizeof key - 1) != 0)
			continue;
		/* The first entry of that name decides; RabbitMQ sends a long ('l'). Any
		 * integer type is read, when not negative; an unsigned 64-bit one only up to
		 * INT64_MAX, as RabbitMQ reads 'L' as signed. */
		switch (f.type) {
		case SALVO_FIELD_I8:
			v = f.v.i8;
			break;
		case SALVO_FIELD_I16:
			v = f.v.i16;
			break;
		case SALVO_FIELD_I32:
			v = f.v.i32;
			break;
		case SALVO_FIELD_I64:
			v = f.v.i64;
			break;
		case SALVO_FIELD_U8:
			v = f.v.u8;
			break;
		case SALVO_FIELD_U16:
			v = f.v.u16;
			break;
		case SALVO_FIELD_U32:
			v = f.v.u32;
			break;
		case SALVO_FIELD_U64:
			v = f.v.u64 > INT64_MAX ? -1 : (int64_t)f.v.u64;
			break;
		default:
			return SALVO_ERR_PROTOCOL;
		}
		if (v < 0)
			return SALVO_ERR_PROTOCOL;
		*offset = (uint64_t)v;
		return 0;
	}
	/* rc < 0: headers that do not parse (not possible for a received message: the
	 * content header was validated). */
	return rc < 0 ? SALVO_ERR_PROTOCOL : SALVO_ERR_UNSUPPORTED;
}

void salvo_message_destroy(salvo_message *m)
{
	struct salvo_consumer *cons;

	if (!m)
		return;
	cons = m->taken ? m->d->cons : NULL; /* a record's handle goes with the delivery */
	/* acq_rel: the last one to let go sees what the others did with the delivery. */
	if (atomic_fetch_sub_explicit(&m->d->refs, 1, memory_order_acq_rel) == 1)
		sv_delivery_free(m->d);
	if (cons)
		sv_consumer_put(cons);
}
