/* SPDX-License-Identifier: MIT */
/*
 * A broker error on a synchronous method comes back at once (seed: nucleon.amqp):
 *
 *	with conn.channel() as channel:
 *	    channel.queue_bind(
 *	        queue='nosuchqueue',
 *	        exchange='nosuchexchange')  # exception will be raised here
 *
 * It is a soft error: the channel is closed, the connection and other channels go on.
 */
#include "example.h"

int main(int argc, char **argv)
{
	salvo_client *client = example_connect(argc, argv);
	salvo_channel *channel, *another;
	salvo_error err;
	int status;

	salvo_channel_open(client, &channel, NULL);
	status = salvo_queue_bind(channel, "nosuchqueue", "nosuchexchange", "", NULL, &err);
	printf("queue_bind: %d %s (%s error, on %s)\n", status, err.text,
	       err.kind == SALVO_ERROR_CHANNEL ? "channel" : "other", err.method);
	salvo_channel_close(channel, NULL);

	/* The connection is still fine. */
	int again = salvo_channel_open(client, &another, &err);
	if (!again)
		again = salvo_channel_close(another, &err);
	printf("a new channel afterwards: %s\n", salvo_err2str(again));
	example_close(client);
	return status == 404 && err.kind != SALVO_ERROR_CONNECTION && again == 0 ? 0 : 1;
}
