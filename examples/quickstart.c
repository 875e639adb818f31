/* SPDX-License-Identifier: MIT */
/* The README's quick start: publish 10,000 messages with publisher confirms, read one back. */
#include <salvo.h>
#include <stdio.h>
#include <stdlib.h>

static void on_outcome(const salvo_outcome *o, void *arg)
{
	unsigned long *acked = arg;

	if (o->kind == SALVO_OUTCOME_ACKED)
		(*acked)++;
	else /* nacked, returned or failed: o->error says why */
		fprintf(stderr, "message %llu: %s\n", (unsigned long long)o->seq,
			o->error ? o->error->text : "nacked");
}

static int fail(const char *what, const salvo_error *err)
{
	char line[512];

	fprintf(stderr, "%s: %s\n", what, salvo_error_format(err, line, sizeof line));
	return 1;
}

int main(int argc, char **argv)
{
	const char *uri = argc > 1 ? argv[1] : "amqp://guest:guest@localhost:5672";
	char errstr[256];
	salvo_error err;
	salvo_client *client;
	salvo_channel *ch;
	salvo_publisher *pub;
	salvo_message *msg;
	unsigned long acked = 0;

	salvo_conf *conf = salvo_conf_new();
	if (salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr)) {
		fprintf(stderr, "uri: %s\n", errstr);
		return 2;
	}
	if (salvo_client_new(conf, &client, &err)) /* connects: 403, 530, timeouts... */
		return fail("connect", &err);
	salvo_conf_destroy(conf);

	/* Synchronous methods on a channel: the broker's error comes back at once. */
	if (salvo_channel_open(client, &ch, &err) ||
	    salvo_queue_declare(ch, "quickstart", 0, NULL, NULL, &err))
		return fail("declare", &err);

	/* A publisher (one per producer thread) with asynchronous confirms. */
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC,
				     .on_outcome = on_outcome,
				     .on_outcome_arg = &acked};
	if (salvo_publisher_new(client, &opts, &pub, &err))
		return fail("publisher", &err);
	for (int i = 0; i < 10000; i++) {
		char body[32];
		int len = snprintf(body, sizeof body, "reading %d", i);
		if (salvo_publish(pub, "", "quickstart", body, (size_t)len, 0, 5000, &err))
			return fail("publish", &err);
	}
	/* Every outcome delivered to on_outcome, here, on this thread. */
	if (salvo_publisher_wait_confirms(pub, 30000, &err))
		return fail("confirms", &err);
	printf("%lu messages acked by the broker\n", acked);
	salvo_publisher_close(pub, 5000, &err);

	/* Read one back. */
	if (salvo_basic_get(ch, "quickstart", true, &msg, &err))
		return fail("get", &err);
	if (msg) {
		size_t len;
		const char *body = salvo_message_body(msg, &len);
		printf("first message: %.*s\n", (int)len, body);
		salvo_message_destroy(msg);
	}
	salvo_queue_delete(ch, "quickstart", 0, NULL, &err);
	salvo_channel_close(ch, &err);
	salvo_client_close(client, 5000, &err);
	salvo_client_destroy(client);
	return acked == 10000 ? 0 : 1;
}
