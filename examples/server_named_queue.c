/* SPDX-License-Identifier: MIT */
/*
 * Synchronous methods return the broker's answer (seed: nucleon.amqp, "Synchronous/
 * Asynchronous Model"):
 *
 *	with conn.channel() as channel:
 *	    resp = channel.queue_declare()
 *	    return resp.queue
 */
#include <string.h>

#include "example.h"

int main(int argc, char **argv)
{
	salvo_client *client = example_connect(argc, argv);
	salvo_channel *channel;
	salvo_queue_info resp;
	salvo_error err;

	if (salvo_channel_open(client, &channel, &err) ||
	    salvo_queue_declare(channel, "", SALVO_EXCLUSIVE, NULL, &resp, &err)) {
		char line[512];
		fprintf(stderr, "%s\n", salvo_error_format(&err, line, sizeof line));
		return 1;
	}
	printf("the broker named the queue %s (%u messages, %u consumers)\n", resp.name,
	       resp.message_count, resp.consumer_count);
	salvo_channel_close(channel, NULL);
	example_close(client);
	return strncmp(resp.name, "amq.gen-", 8) == 0 ? 0 : 1;
}
