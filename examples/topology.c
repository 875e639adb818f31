/* SPDX-License-Identifier: MIT */
/*
 * Declare topology at start-up, publish, fetch and acknowledge, tear down (seed: nucleon's
 * AMQP access layer, "Configuring AMQP", "Receiving AMQP messages", "Shutting Down"):
 *
 *	connection.exchange_declare("unit_test_room")
 *	connection.queue_declare(queue='listener1')
 *	connection.queue_bind(queue="listener1", exchange="unit_test_room", routing_key="user1")
 *	conn.publish(exchange="unit_test_room", routing_key="user1", body="WithHello1")
 *	result = conn.consume(queue="listener1")      # basic_get in synchronous mode
 *	conn.ack(result)
 *	client.exchange_delete("unit_test_room"); client.queue_delete(queue='listener1')
 */
#include <string.h>
#include <time.h>

#include "example.h"

static int check(int status, const salvo_error *err, const char *what)
{
	char line[512];

	if (status)
		fprintf(stderr, "%s: %s\n", what, salvo_error_format(err, line, sizeof line));
	return status;
}

int main(int argc, char **argv)
{
	salvo_client *client = example_connect(argc, argv);
	salvo_channel *ch;
	salvo_publisher *pub;
	salvo_message *msg = NULL;
	salvo_error err;
	size_t len = 0;
	const void *body = NULL;

	if (check(salvo_channel_open(client, &ch, &err), &err, "channel") ||
	    check(salvo_exchange_declare(ch, "unit_test_room", "direct", 0, NULL, &err), &err,
		  "exchange_declare") ||
	    check(salvo_queue_declare(ch, "listener1", 0, NULL, NULL, &err), &err,
		  "queue_declare") ||
	    check(salvo_queue_bind(ch, "listener1", "unit_test_room", "user1", NULL, &err), &err,
		  "queue_bind") ||
	    check(salvo_publisher_new(client, NULL, &pub, &err), &err, "publisher") ||
	    check(salvo_publish(pub, "unit_test_room", "user1", "WithHello1", 10, 0, 1000, &err),
		  &err, "publish") ||
	    check(salvo_publisher_close(pub, 1000, &err), &err, "publisher close"))
		return 1;
	/* basic.get answers "empty" until the broker has routed the message. */
	for (int i = 0; i < 100 && !msg; i++) {
		struct timespec pause = {0, 10 * 1000 * 1000};
		if (check(salvo_basic_get(ch, "listener1", false, &msg, &err), &err, "basic_get"))
			return 1;
		if (!msg)
			nanosleep(&pause, NULL);
	}
	if (msg) {
		body = salvo_message_body(msg, &len);
		printf("received %.*s via %s/%s\n", (int)len, (const char *)body,
		       salvo_message_exchange(msg), salvo_message_routing_key(msg));
		check(salvo_basic_ack(ch, salvo_message_delivery_tag(msg), false, &err), &err,
		      "ack");
	}
	int ok = msg && len == 10 && memcmp(body, "WithHello1", 10) == 0;
	salvo_message_destroy(msg);
	check(salvo_exchange_delete(ch, "unit_test_room", 0, &err), &err, "exchange_delete");
	check(salvo_queue_delete(ch, "listener1", 0, NULL, &err), &err, "queue_delete");
	salvo_channel_close(ch, NULL);
	example_close(client);
	return ok ? 0 : 1;
}
