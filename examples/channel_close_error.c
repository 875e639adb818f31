/* SPDX-License-Identifier: MIT */
/*
 * Closing a channel is synchronous and reports what was pending (seed: nucleon.amqp):
 *
 *	with conn.channel() as channel:
 *	    channel.basic_publish(exchange='nosuchexchange', ...)
 *	# Exception will be raised before we get to the next statement
 *
 * In salvo the publisher owns its channel; closing it waits for the broker and returns
 * the error the publish caused.
 */
#include "example.h"

int main(int argc, char **argv)
{
	salvo_client *client = example_connect(argc, argv);
	salvo_publisher *publisher;
	salvo_error err;
	int published, closed;

	salvo_publisher_new(client, NULL, &publisher, NULL);
	published = salvo_publish(publisher, "nosuchexchange", "status.update",
				  "amqp is teh cool", 16, 0, 1000, &err);
	closed = salvo_publisher_close(publisher, 1000, &err);
	printf("publish: %s; close: %d %s\n", salvo_err2str(published), closed, err.text);
	example_close(client);
	return published == 0 && closed == 404 ? 0 : 1;
}
