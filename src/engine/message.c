/* SPDX-License-Identifier: MIT */
/*
 * A received message (basic.get or a delivery): read-only accessors, any thread, and its
 * end. A message holds its channel (for acks), so the channel outlives the handle until
 * every message is destroyed. Settling it is consumer.c's (salvo_message_ack and friends).
 */
#include <stdlib.h>

#include "engine.h"

const void *salvo_message_body(const salvo_message *m, size_t *len)
{
	if (len)
		*len = m->len;
	return m->body;
}

const char *salvo_message_exchange(const salvo_message *m)
{
	return m->exchange;
}

const char *salvo_message_routing_key(const salvo_message *m)
{
	return m->routing_key;
}

uint64_t salvo_message_delivery_tag(const salvo_message *m)
{
	return m->delivery_tag;
}

bool salvo_message_redelivered(const salvo_message *m)
{
	return m->redelivered;
}

uint32_t salvo_message_count(const salvo_message *m)
{
	return m->message_count;
}

const char *salvo_message_consumer_tag(const salvo_message *m)
{
	return m->consumer_tag;
}

const salvo_props *salvo_message_props(const salvo_message *m)
{
	return &m->props;
}

uint32_t salvo_message_record_index(const salvo_message *m)
{
	(void)m;
	return 0;
}

uint32_t salvo_message_record_count(const salvo_message *m)
{
	(void)m;
	return 1;
}

void salvo_message_destroy(salvo_message *m)
{
	if (!m)
		return;
	free(m->body);
	free(m->props_mem);
	if (m->ch)
		sv_channel_put(m->ch);
	free(m);
}
