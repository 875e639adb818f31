/* SPDX-License-Identifier: MIT */
/*
 * topology_recovery: how long salvo takes to make a topology again after a reconnection,
 * from the SALVO_EVENT_RECONNECTED event to SALVO_EVENT_TOPOLOGY_RECOVERED (both stamped
 * by salvo, CLOCK_MONOTONIC). The topology: one exchange, N exclusive queues (they die
 * with the connection, so each is really declared again), a binding of each to the
 * exchange, and with --consumers a consumer of each (on one channel with a prefetch).
 * The connection is closed by rabbitmqctl close_connection (SALVO_RABBITMQCTL, with the
 * examples' helper) --rounds times; each round's time is printed, and the median. For
 * comparison, the time the application's own declares took at the start (the same
 * round trips, made by the application's thread) is printed first.
 *
 * usage: SALVO_RABBITMQCTL='rabbitmqctl' topology_recovery URI [--queues N] [--consumers]
 *        [--rounds R]   (defaults 1000 queues, 3 rounds)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../examples/example.h" /* example_check, example_close_connection */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	unsigned queues = 1000, rounds = 3;
	bool consumers = false;
	const char *uri = NULL;
	char name[64], errstr[256], max[32];
	salvo_conf *conf = salvo_conf_new();
	salvo_consumer **cons = NULL;
	salvo_channel *ch;
	salvo_client *c;
	salvo_error err;
	uint64_t ms[64];
	struct timespec t0, t1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--queues") && i + 1 < argc)
			queues = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--consumers"))
			consumers = true;
		else if (argv[i][0] != '-' && !uri)
			uri = argv[i];
		else
			uri = NULL, i = argc;
	}
	if (!uri || !getenv("SALVO_RABBITMQCTL") || !queues || !rounds || rounds > 64) {
		fprintf(stderr,
			"usage: SALVO_RABBITMQCTL=rabbitmqctl %s URI [--queues N] "
			"[--consumers] [--rounds R (1..64)]\n",
			argv[0]);
		return 2;
	}
	snprintf(name, sizeof name, "salvo topology_recovery bench %d", (int)getpid());
	snprintf(max, sizeof max, "%u", 3 * queues + 1);
	if (!conf || salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) ||
	    salvo_conf_set(conf, "connection_name", name, errstr, sizeof errstr) ||
	    salvo_conf_set(conf, "topology_recovery.max_entities", max, errstr, sizeof errstr) ||
	    salvo_conf_set(conf, "reconnect.initial_delay", "10", errstr, sizeof errstr)) {
		fprintf(stderr, "conf: %s\n", conf ? errstr : "out of memory");
		return 1;
	}
	example_check(salvo_client_new(conf, &c, &err), &err, "connect");
	salvo_conf_destroy(conf);
	example_check(salvo_channel_open(c, &ch, &err), &err, "channel");
	example_check(salvo_exchange_declare(ch, "salvo.bench.topology", "direct",
					     SALVO_AUTO_DELETE, NULL, &err),
		      &err, "exchange_declare");
	if (consumers) {
		example_check(salvo_basic_qos(ch, 0, 10, false, &err), &err, "qos");
		cons = calloc(queues, sizeof *cons);
		if (!cons)
			return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < queues; i++) {
		char q[64], key[16];

		snprintf(q, sizeof q, "salvo.bench.topology.%d.%u", (int)getpid(), i);
		snprintf(key, sizeof key, "%u", i);
		example_check(salvo_queue_declare(ch, q, SALVO_EXCLUSIVE, NULL, NULL, &err), &err,
			      "queue_declare");
		example_check(salvo_queue_bind(ch, q, "salvo.bench.topology", key, NULL, &err),
			      &err, "queue_bind");
		if (consumers)
			example_check(salvo_consume(ch, q, NULL, &cons[i], &err), &err, "consume");
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("topology: 1 exchange, %u exclusive queues, %u bindings, %u consumers\n", queues,
	       queues, consumers ? queues : 0);
	printf("declared by the application in %.0f ms\n",
	       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	for (unsigned r = 0; r < rounds; r++) {
		uint64_t reconnected = 0;
		salvo_event ev;

		example_close_connection(name, "topology_recovery bench");
		for (;;) {
			if (salvo_client_poll_event(c, &ev, 60000)) {
				fprintf(stderr, "no recovery within 60 s\n");
				return 1;
			}
			if (ev.kind == SALVO_EVENT_RECONNECTED)
				reconnected = ev.time_ns;
			if (ev.kind == SALVO_EVENT_TOPOLOGY_FAILED) {
				fprintf(stderr, "%s: %s\n", ev.reason, ev.error.text);
				return 1;
			}
			if (ev.kind == SALVO_EVENT_TOPOLOGY_RECOVERED)
				break;
		}
		ms[r] = (ev.time_ns - reconnected) / 1000000;
		printf("round %u: %u entities recovered in %llu ms (%.0f entities/s)\n", r + 1,
		       ev.attempt, (unsigned long long)ms[r],
		       ev.attempt / ((ev.time_ns - reconnected) / 1e9));
	}
	qsort(ms, rounds, sizeof ms[0], cmp_u64);
	printf("median: %llu ms from RECONNECTED to TOPOLOGY_RECOVERED\n",
	       (unsigned long long)ms[rounds / 2]);
	for (unsigned i = 0; consumers && i < queues; i++)
		salvo_consumer_destroy(cons[i]);
	free(cons);
	salvo_channel_close(ch, NULL);
	salvo_client_close(c, 5000, NULL);
	salvo_client_destroy(c);
	return 0;
}
