/* SPDX-License-Identifier: MIT */
/*
 * Topology recovery (issue 17): what a client declared comes back by itself after the
 * connection is lost, and its consumers go on. The application declares an exchange and
 * a server-named exclusive queue, binds them and consumes, as in server_named_queue.c;
 * then the broker closes the connection (rabbitmqctl close_connection, the "network
 * failure"). The exclusive queue dies with the connection; salvo reconnects, declares
 * the exchange, the queue (under a new name the broker picks), the binding and the
 * consumer again, and says so with events. A message published after the recovery
 * arrives on the same salvo_consumer.
 *
 * Set SALVO_RABBITMQCTL to the command ("rabbitmqctl", or the test broker's
 * "bash scripts/rabbitmq.sh ctl"); without it the example is skipped.
 */
#include <string.h>
#include <unistd.h>

#include "example.h"

int main(int argc, char **argv)
{
	const char *uri = example_uri(argc, argv);
	const char *exchange = "salvo.example.topology";
	char name[64], errstr[256], queue[256], line[512];
	salvo_publisher_opts popts = {.confirm = SALVO_CONFIRM_SYNC};
	salvo_conf *conf = salvo_conf_new();
	salvo_publisher *pub;
	salvo_consumer *cons;
	salvo_queue_info info;
	salvo_channel *ch;
	salvo_client *c;
	salvo_message *m;
	salvo_event ev;
	salvo_error err;
	size_t len;
	const char *body;
	bool recovered = false, renamed = false;

	if (!getenv("SALVO_RABBITMQCTL")) {
		fprintf(stderr,
			"SALVO_RABBITMQCTL not set: nothing to close the connection with\n");
		return EXAMPLE_SKIP;
	}
	/* topology_recovery is on by default; the name lets rabbitmqctl find us. */
	snprintf(name, sizeof name, "topology_recovery example %d", (int)getpid());
	if (!conf || salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) ||
	    salvo_conf_set(conf, "connection_name", name, errstr, sizeof errstr)) {
		fprintf(stderr, "conf: %s\n", conf ? errstr : "out of memory");
		return 1;
	}
	example_check(salvo_client_new(conf, &c, &err), &err, "connect");
	salvo_conf_destroy(conf);

	example_check(salvo_channel_open(c, &ch, &err), &err, "channel");
	example_check(salvo_exchange_declare(ch, exchange, "direct", SALVO_AUTO_DELETE, NULL, &err),
		      &err, "exchange_declare");
	example_check(salvo_queue_declare(ch, "", SALVO_EXCLUSIVE, NULL, &info, &err), &err,
		      "queue_declare");
	example_check(salvo_queue_bind(ch, info.name, exchange, "news", NULL, &err), &err,
		      "queue_bind");
	example_check(salvo_consume(ch, info.name, NULL, &cons, &err), &err, "consume");
	printf("declared %s, bound to %s, consuming as %s\n", info.name, exchange,
	       salvo_consumer_tag(cons));

	example_close_connection(name, "topology_recovery example");
	/* The events tell the story: lost, reconnected, renamed, recovered. */
	while (!recovered) {
		if (salvo_client_poll_event(c, &ev, 20000)) {
			fprintf(stderr, "no recovery within 20 s\n");
			return 1;
		}
		switch (ev.kind) {
		case SALVO_EVENT_CONNECTION_LOST:
			printf("connection lost: %s\n",
			       salvo_error_format(&ev.error, line, sizeof line));
			break;
		case SALVO_EVENT_RECONNECTED:
			printf("reconnected to %s\n", ev.endpoint);
			break;
		case SALVO_EVENT_QUEUE_RENAMED:
			printf("queue renamed: %s -> %s\n", ev.name, ev.new_name);
			renamed = true;
			break;
		case SALVO_EVENT_TOPOLOGY_FAILED:
			fprintf(stderr, "%s: %s\n", ev.reason,
				salvo_error_format(&ev.error, line, sizeof line));
			return 1;
		case SALVO_EVENT_TOPOLOGY_RECOVERED:
			printf("topology recovered: %s\n", ev.reason);
			recovered = true;
			break;
		default:
			break;
		}
	}
	if (!renamed) {
		fprintf(stderr, "the server-named queue was not renamed\n");
		return 1;
	}
	/* The old name still finds the queue. */
	if (salvo_client_queue_name(c, info.name, queue, sizeof queue)) {
		fprintf(stderr, "queue_name failed\n");
		return 1;
	}
	printf("%s is now %s\n", info.name, queue);

	/* Published after the recovery, through the recovered binding, to the same consumer. */
	example_check(salvo_publisher_new(c, &popts, &pub, &err), &err, "publisher");
	example_check(salvo_publish(pub, exchange, "news", "after the outage", 16,
				    SALVO_MSG_MANDATORY, 5000, &err),
		      &err, "publish");
	salvo_publisher_close(pub, 5000, NULL);
	example_check(salvo_consumer_get(cons, 5000, &m, &err), &err, "consumer_get");
	body = salvo_message_body(m, &len);
	printf("received on %s: %.*s\n", salvo_consumer_tag(cons), (int)len, body);
	example_check(salvo_message_ack(m, false, &err), &err, "ack");
	salvo_message_destroy(m);

	salvo_consumer_destroy(cons);
	salvo_channel_close(ch, NULL);
	example_close(c);
	return 0;
}
