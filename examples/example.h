/* SPDX-License-Identifier: MIT */
/* What every example needs: the broker's URI and a connected client. */
#ifndef SALVO_EXAMPLE_H
#define SALVO_EXAMPLE_H

#include <stdio.h>
#include <stdlib.h>

#include <salvo.h>

/* Exit status of an example that has nothing to connect to (meson reads 77 as "skipped"). */
#define EXAMPLE_SKIP 77

/* The broker's URI: argv[1], or $SALVO_TEST_URI; exits (skipped) when neither is given. */
static inline const char *example_uri(int argc, char **argv)
{
	const char *uri = argc > 1 ? argv[1] : getenv("SALVO_TEST_URI");

	if (!uri) {
		fprintf(stderr, "usage: %s amqp://user:password@host:port\n", argv[0]);
		exit(EXAMPLE_SKIP);
	}
	return uri;
}

/* Exit with a message when status is not 0: the examples stop at the first failure. */
static inline void example_check(int status, const salvo_error *err, const char *what)
{
	if (status) {
		char line[512];
		fprintf(stderr, "%s: %s\n", what, salvo_error_format(err, line, sizeof line));
		exit(1);
	}
}

/* Connect to argv[1], or $SALVO_TEST_URI; exits when neither is given or connecting fails. */
static inline salvo_client *example_connect(int argc, char **argv)
{
	const char *uri = example_uri(argc, argv);
	char errstr[256];
	salvo_conf *conf;
	salvo_client *client;
	salvo_error err;

	conf = salvo_conf_new();
	if (!conf || salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr)) {
		fprintf(stderr, "%s: %s\n", uri, conf ? errstr : "out of memory");
		exit(1);
	}
	if (salvo_client_new(conf, &client, &err)) {
		char line[512];
		fprintf(stderr, "connect: %s\n", salvo_error_format(&err, line, sizeof line));
		exit(1);
	}
	salvo_conf_destroy(conf);
	return client;
}

/* rabbitmqctl close_connection, with reason, for our connection named name (the "network
 * failure" of the recovery examples): SALVO_RABBITMQCTL holds the command ("rabbitmqctl",
 * or the test broker's "bash scripts/rabbitmq.sh ctl"). Exits when it fails. */
static inline void example_close_connection(const char *name, const char *reason)
{
	const char *ctl = getenv("SALVO_RABBITMQCTL");
	char cmd[1024];

	snprintf(cmd, sizeof cmd,
		 "pid=$(%s -q list_connections pid client_properties | grep -F '%s' | cut -f1) "
		 "&& %s -q close_connection \"$pid\" '%s' >/dev/null",
		 ctl, name, ctl, reason);
	if (!ctl || system(cmd) != 0) {
		fprintf(stderr, "could not close connection %s\n", name);
		exit(1);
	}
}

static inline void example_close(salvo_client *client)
{
	salvo_error err;
	char line[512];

	if (salvo_client_close(client, 5000, &err))
		fprintf(stderr, "close: %s\n", salvo_error_format(&err, line, sizeof line));
	salvo_client_destroy(client);
}

#endif
