/* SPDX-License-Identifier: MIT */
/*
 * An asynchronous publish returns at once; the broker's error surfaces at the next call
 * (seed: nucleon.amqp):
 *
 *	channel.basic_publish(exchange='no-such-exchange', ...)   # returns immediately
 *	time.sleep(0.2)
 *	channel.basic_publish(exchange='valid-exchange', ...)     # the error is raised here
 */
#include <time.h>

#include "example.h"

int main(int argc, char **argv)
{
	salvo_client *client = example_connect(argc, argv);
	struct timespec pause = {0, 200 * 1000 * 1000};
	salvo_publisher *publisher;
	salvo_error err;
	int first, second;

	salvo_publisher_new(client, NULL, &publisher, NULL);
	first = salvo_publish(publisher, "no-such-exchange", "status.update", "amqp is teh cool",
			      16, 0, 1000, &err);
	printf("first publish: %s\n", salvo_err2str(first));
	nanosleep(&pause, NULL);
	second = salvo_publish(publisher, "amq.direct", "status.update", "AMQP is teh cool", 16,
			       0, 1000, &err);
	printf("second publish: %d %s\n", second, err.text);
	salvo_publisher_close(publisher, 1000, NULL);
	example_close(client);
	return first == 0 && second == 404 ? 0 : 1;
}
