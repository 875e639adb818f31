/* SPDX-License-Identifier: MIT */
/*
 * Pools of connections configured in a file, one for publishing and one for listening
 * (seed: nucleon's AMQP access layer, "Publishing AMQP message", "Receiving AMQP
 * messages", "Configuring AMQP"):
 *
 *	conn = app.get_amqp_pool().connection()
 *	conn.publish(exchange="unit_test_room", routing_key="user1", body="WithHello1")
 *	conn = app.get_amqp_pool(type="listen").connection()
 *	result = conn.consume(queue="listener1")
 *	conn.ack(result)
 *
 * The pools come from an app.cfg written into a temporary directory:
 *
 *	[publish]
 *	uri = amqp://...
 *	pool_size = 2
 *	[listen]
 *	uri = amqp://...
 *	pool_size = 2
 *
 * Each publish takes the next connection of the publish pool; each consume the next of
 * the listen pool. The example checks that every message came back and the queue is empty.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "example.h"

#define MESSAGES 20

int main(int argc, char **argv)
{
	const char *uri = example_uri(argc, argv);
	char dir[] = "/tmp/salvo-example-XXXXXX", path[64];
	salvo_pool *publish_pool, *listen_pool;
	salvo_channel *ch;
	salvo_queue_info info;
	salvo_error err;
	int received = 0;
	char room[64], queue[64];
	FILE *f;

	/* The seed's names, made unique: the tests run in parallel on one broker. */
	snprintf(room, sizeof room, "unit_test_room.%d", (int)getpid());
	snprintf(queue, sizeof queue, "listener1.%d", (int)getpid());

	/* app.cfg, as an application would ship it. */
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/app.cfg", dir);
	f = fopen(path, "w");
	if (!f)
		return 1;
	fprintf(f,
		"# AMQP pools\n"
		"[publish]\n"
		"uri = %s\n"
		"pool_size = 2\n"
		"connection_name = example-publish\n"
		"\n"
		"[listen]\n"
		"uri = %s\n"
		"pool_size = 2\n"
		"connection_name = example-listen\n",
		uri, uri);
	fclose(f);
	example_check(salvo_pool_new_from_file(path, "publish", NULL, &publish_pool, &err), &err,
		      "publish pool");
	example_check(salvo_pool_new_from_file(path, "listen", NULL, &listen_pool, &err), &err,
		      "listen pool");
	unlink(path);
	rmdir(dir);
	printf("pools: %zu publish, %zu listen connections\n", salvo_pool_size(publish_pool),
	       salvo_pool_size(listen_pool));

	/* Topology at start-up, on any connection of the pool. */
	example_check(salvo_channel_open(salvo_pool_get(publish_pool), &ch, &err), &err, "channel");
	example_check(salvo_exchange_declare(ch, room, "direct", 0, NULL, &err), &err,
		      "exchange_declare");
	example_check(salvo_queue_declare(ch, queue, 0, NULL, NULL, &err), &err, "queue_declare");
	example_check(salvo_queue_purge(ch, queue, NULL, &err), &err, "queue_purge");
	example_check(salvo_queue_bind(ch, queue, room, "user1", NULL, &err), &err, "queue_bind");

	/* conn = pool.connection(); conn.publish(...), synchronously confirmed. */
	for (int i = 0; i < MESSAGES; i++) {
		salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC};
		salvo_client *conn = salvo_pool_get(publish_pool);
		salvo_publisher *pub;
		char body[32];
		int len = snprintf(body, sizeof body, "WithHello%d", i);

		example_check(salvo_publisher_new(conn, &opts, &pub, &err), &err, "publisher");
		example_check(salvo_publish(pub, room, "user1", body, (size_t)len, 0, 5000, &err),
			      &err, "publish");
		example_check(salvo_publisher_close(pub, 5000, &err), &err, "publisher close");
	}

	/* conn = pool(type="listen").connection(); conn.consume(queue); conn.ack(result). */
	while (received < MESSAGES) {
		salvo_client *conn = salvo_pool_get(listen_pool);
		salvo_channel *lch;
		salvo_message *msg;

		example_check(salvo_channel_open(conn, &lch, &err), &err, "listen channel");
		example_check(salvo_basic_get(lch, queue, false, &msg, &err), &err, "basic_get");
		if (!msg) {
			fprintf(stderr, "queue empty after %d messages\n", received);
			return 1;
		}
		example_check(salvo_message_ack(msg, false, &err), &err, "ack");
		salvo_message_destroy(msg);
		example_check(salvo_channel_close(lch, &err), &err, "listen channel close");
		received++;
	}

	/* Tear down, then close every connection of both pools. */
	example_check(salvo_queue_declare(ch, queue, SALVO_PASSIVE, NULL, &info, &err), &err,
		      "queue count");
	salvo_exchange_delete(ch, room, 0, NULL);
	salvo_queue_delete(ch, queue, 0, NULL, NULL);
	salvo_channel_close(ch, NULL);
	example_check(salvo_pool_destroy(publish_pool, 5000, &err), &err, "publish pool close");
	example_check(salvo_pool_destroy(listen_pool, 5000, &err), &err, "listen pool close");
	printf("published %d through the publish pool, received and acked %d through the "
	       "listen pool, %u left\n",
	       MESSAGES, received, info.message_count);
	return received == MESSAGES && info.message_count == 0 ? 0 : 1;
}
