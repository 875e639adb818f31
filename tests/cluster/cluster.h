/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the tests against the throwaway cluster of scripts/rabbitmq.sh (cluster
 * start): its URIs (SALVO_TEST_CLUSTER_URIS, one per node, separated by spaces, node 1
 * first), the script's verbs for a node (SALVO_SOURCE_ROOT; the cluster's base port comes
 * with SALVO_TEST_CLUSTER_PORT in the environment), clients whose endpoints are every node
 * with a chosen one first, and the client's state and endpoint as its Prometheus text
 * reports them. They stop the test at the first failure, like CHECK (check.h).
 */
#ifndef SALVO_TEST_CLUSTER_H
#define SALVO_TEST_CLUSTER_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "salvo.h"

#include "../check.h"

#define CLUSTER_MAX 9

static char cluster_uri[CLUSTER_MAX][256];
static int cluster_n;

/* The before hook (run_cases) of the suite's programs: 0 with the cluster's URIs read, or
 * 77 (skipped) without SALVO_TEST_CLUSTER_URIS or SALVO_SOURCE_ROOT. */
static inline int cluster_need(void)
{
	const char *s = getenv("SALVO_TEST_CLUSTER_URIS");

	if (!s || !*s || !getenv("SALVO_SOURCE_ROOT")) {
		fprintf(stderr, "SALVO_TEST_CLUSTER_URIS or SALVO_SOURCE_ROOT not set: no cluster "
				"to test against\n");
		return 77;
	}
	cluster_n = 0;
	while (*s) {
		size_t k;

		s += strspn(s, " ");
		k = strcspn(s, " ");
		if (!k)
			break;
		CHECK(cluster_n < CLUSTER_MAX && k < sizeof cluster_uri[0]);
		memcpy(cluster_uri[cluster_n], s, k);
		cluster_uri[cluster_n++][k] = '\0';
		s += k;
	}
	if (cluster_n < 3) {
		fprintf(stderr, "SALVO_TEST_CLUSTER_URIS names %d nodes; these tests need 3\n",
			cluster_n);
		return 77;
	}
	return 0;
}

/* Node i's (1-based) host:port, as salvo reports endpoints. */
static inline const char *cluster_endpoint(int i)
{
	const char *at = strrchr(cluster_uri[i - 1], '@');

	CHECK(at);
	return at + 1;
}

/* scripts/rabbitmq.sh cluster VERB [NODE] (node 0: none); its exit status. stdout, the
 * URIs or the status lines, goes to out (up to size bytes) when out is not NULL. */
static inline int cluster_script(const char *verb, int node, char *out, size_t size)
{
	char cmd[1024], buf[512];
	size_t used = 0;
	FILE *f;
	int rc;

	snprintf(cmd, sizeof cmd, "bash '%s/scripts/rabbitmq.sh' cluster %s%s%.0d",
		 getenv("SALVO_SOURCE_ROOT"), verb, node ? " " : "", node);
	fflush(stdout);
	f = popen(cmd, "r");
	CHECK(f);
	if (out && size)
		out[0] = '\0';
	while (fgets(buf, sizeof buf, f)) {
		size_t k = strlen(buf);

		if (out && used + k < size) {
			memcpy(out + used, buf, k + 1);
			used += k;
		}
	}
	rc = pclose(f);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/*
 * A client whose endpoints are every node (whole URIs: "uri" node 1, "uri.add" the others)
 * made with salvo_client_new_at, so it tries node `first` (1-based) first and the others in
 * order after it, named name, with more configuration keys: key, value, ..., NULL
 * (rabbit_conf_keys: the file that includes this one includes ../rabbit.h first).
 */
static inline salvo_client *cluster_client(int first, const char *name, const char *key, ...)
{
	char errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_error err;
	va_list ap;
	int rc;

	CHECK(conf);
	for (int k = 0; k < cluster_n; k++)
		CHECK(salvo_conf_set(conf, k ? "uri.add" : "uri", cluster_uri[k], errstr,
				     sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "connection_name", name, errstr, sizeof errstr) == 0);
	va_start(ap, key);
	rabbit_conf_keys(conf, key, ap);
	va_end(ap);
	rc = salvo_client_new_at(conf, (size_t)(first - 1), &c, &err);
	salvo_conf_destroy(conf);
	if (rc) {
		fprintf(stderr, "connect to node %d: %d %s\n", first, rc, err.text);
		exit(1);
	}
	return c;
}

/*
 * The client's connection state ("open", "recovering", ...) and endpoint (host:port), from
 * the salvo_connection_info line of its Prometheus text. Any thread.
 */
static inline void cluster_client_state(salvo_client *c, char *state, size_t ssize, char *endpoint,
					size_t esize)
{
	char text[16384];
	const char *line, *s, *e;
	size_t k;

	salvo_stats_prometheus(c, text, sizeof text);
	line = strstr(text, "\nsalvo_connection_info{");
	CHECK(line);
	s = strstr(line, "state=\"");
	e = strstr(line, "endpoint=\"");
	CHECK(s && e);
	s += 7;
	e += 10;
	k = strcspn(s, "\"");
	k = k < ssize ? k : ssize - 1;
	memcpy(state, s, k);
	state[k] = '\0';
	k = strcspn(e, "\"");
	k = k < esize ? k : esize - 1;
	memcpy(endpoint, e, k);
	endpoint[k] = '\0';
}

/* rabbitmqctl list_queues name type members, asked of node i, the line of queue q (or "").
 */
static inline void cluster_queue_line(int node, const char *q, char *out, size_t size)
{
	char verb[512];

	snprintf(verb, sizeof verb,
		 "ctl %d -q list_queues name type members --no-table-headers | grep -F '%s'", node,
		 q);
	cluster_script(verb, 0, out, size);
}

#endif
