/* SPDX-License-Identifier: MIT */
/*
 * Several endpoints against real RabbitMQ nodes: an endpoint that is down when a client is
 * made (a loopback port that refuses, then the test broker) is reported by an event and a
 * log line naming it and why, and the client works on the next one; a pool of 2n
 * connections over n nodes has 2 on each (connection i on node i mod n), asked of salvo
 * (each client's endpoint) and of each node (rabbitmqctl list_connections), with and
 * without endpoints.shuffle.
 *
 * argv[1] names the case. "down at start" needs SALVO_TEST_URI; the pool cases need
 * SALVO_TEST_CLUSTER_URIS (two or more whole URIs separated by spaces: cluster nodes, or
 * independent brokers sharing guest/guest) and SALVO_SOURCE_ROOT (scripts/rabbitmq.sh ctl
 * against each node's port). Each skips with 77 without them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "salvo.h"

#include "../check.h"
#include "../rabbit.h"

#define NODES_MAX 8

struct lines {
	int n, warnings_naming;
	char want[64];
};

static void collect(void *arg, int level, const char *facility, const char *line)
{
	struct lines *ls = arg;

	printf("log %s %s: %s\n", salvo_log_level_name(level), facility, line);
	ls->n++;
	ls->warnings_naming += level == SALVO_LOG_WARNING && strstr(line, ls->want) &&
			       strstr(line, "Connection refused");
}

/* "host:port" of c's connection, from its statistics (the endpoint label). */
static void connected_endpoint(salvo_client *c, char *out, size_t size)
{
	char text[65536];
	const char *at, *end;

	CHECK(salvo_stats_prometheus(c, text, sizeof text) < sizeof text);
	at = strstr(text, "endpoint=\"");
	CHECK(at);
	at += strlen("endpoint=\"");
	end = strchr(at, '"');
	CHECK(end && (size_t)(end - at) < size);
	snprintf(out, size, "%.*s", (int)(end - at), at);
}

/* The host:port of a URI, as salvo names endpoints (amqp://user:pw@host:port/vhost). */
static void uri_endpoint(const char *uri, char *out, size_t size)
{
	const char *at = strstr(uri, "://"), *end;

	CHECK(at);
	at += 3;
	if (strchr(at, '@'))
		at = strchr(at, '@') + 1;
	end = at + strcspn(at, "/?");
	snprintf(out, size, "%.*s", (int)(end - at), at);
	CHECK(strchr(out, ':'));
}

/* Endpoint 0 refuses, endpoint 1 is the test broker: the client is made on endpoint 1,
 * and says which endpoint failed and why, as an event and a warning line. */
static void case_down_at_start(void)
{
	const char *uri = rabbit_test_uri();
	salvo_conf *conf = salvo_conf_new();
	struct lines ls = {0};
	char first[64], errstr[256], live[64], got[64];
	unsigned port;
	int fd = refusing_port(&port);
	salvo_client *c = NULL;
	salvo_channel *ch;
	salvo_event ev;
	salvo_error err;

	CHECK(conf);
	snprintf(first, sizeof first, "amqp://guest:guest@127.0.0.1:%u", port);
	snprintf(ls.want, sizeof ls.want, "127.0.0.1:%u", port);
	CHECK(salvo_conf_set(conf, "uri", first, errstr, sizeof errstr) == 0);
	/* the test broker's whole URI: the same user, password and vhost */
	if (salvo_conf_set(conf, "uri.add", uri, errstr, sizeof errstr)) {
		fprintf(stderr, "uri.add %s: %s\n", uri, errstr);
		CHECK(0);
	}
	CHECK(salvo_conf_set_log_cb(conf, collect, &ls) == 0);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);

	CHECK(salvo_client_poll_event(c, &ev, 0) == 0);
	printf("event %d: %s: %s\n", (int)ev.kind, ev.endpoint, ev.error.text);
	CHECK(ev.kind == SALVO_EVENT_ENDPOINT_FAILED);
	CHECK(strcmp(ev.endpoint, ls.want) == 0);
	CHECK(ev.error.status == SALVO_ERR_IO && strstr(ev.error.text, "Connection refused"));
	CHECK(salvo_client_poll_event(c, &ev, 0) == SALVO_ERR_WOULD_BLOCK);
	CHECK(ls.warnings_naming == 1);

	uri_endpoint(uri, live, sizeof live);
	connected_endpoint(c, got, sizeof got);
	CHECK(strcmp(got, live) == 0);
	/* and it works there */
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
	close(fd);
}

struct nodes {
	char *uris[NODES_MAX];
	char endpoint[NODES_MAX][64];
	int n;
	char *text;
};

/* SALVO_TEST_CLUSTER_URIS and SALVO_SOURCE_ROOT, or the case is skipped. */
static void need_nodes(struct nodes *nd)
{
	const char *env = getenv("SALVO_TEST_CLUSTER_URIS");
	char *save = NULL;

	if (!env || !getenv("SALVO_SOURCE_ROOT")) {
		fprintf(stderr, "SALVO_TEST_CLUSTER_URIS or SALVO_SOURCE_ROOT not set\n");
		exit(77);
	}
	nd->text = strdup(env);
	CHECK(nd->text);
	nd->n = 0;
	for (char *u = strtok_r(nd->text, " ", &save); u; u = strtok_r(NULL, " ", &save)) {
		CHECK(nd->n < NODES_MAX);
		nd->uris[nd->n] = u;
		uri_endpoint(u, nd->endpoint[nd->n], sizeof nd->endpoint[nd->n]);
		nd->n++;
	}
	if (nd->n < 2) {
		fprintf(stderr, "SALVO_TEST_CLUSTER_URIS names fewer than two nodes\n");
		exit(77);
	}
}

/* Connections named name that came in on the node at endpoint (host:port), asked of that
 * node: rabbitmqctl lists a whole cluster's connections, so only those to its own port
 * count. */
static int node_connections(const char *endpoint, const char *name)
{
	const char *port = strrchr(endpoint, ':') + 1;
	char cmd[1024], line[4096];
	int n = 0;
	FILE *f;

	const char *base = getenv("SALVO_TEST_CLUSTER_PORT");
	long node = base ? strtol(port, NULL, 10) - strtol(base, NULL, 10) + 1 : 0;

	/* A cluster of scripts/rabbitmq.sh (SALVO_TEST_CLUSTER_PORT: its first node's port) is
	 * asked node by node; independent brokers each by the port it was started on. */
	if (base)
		snprintf(cmd, sizeof cmd,
			 "SALVO_TEST_CLUSTER_PORT=%s bash '%s/scripts/rabbitmq.sh' cluster ctl %ld "
			 "-q list_connections port client_properties",
			 base, getenv("SALVO_SOURCE_ROOT"), node);
	else
		snprintf(cmd, sizeof cmd,
			 "SALVO_TEST_PORT=%s bash '%s/scripts/rabbitmq.sh' ctl -q list_connections "
			 "port client_properties",
			 port, getenv("SALVO_SOURCE_ROOT"));
	f = popen(cmd, "r");
	CHECK(f);
	while (fgets(line, sizeof line, f))
		n += strtoul(line, NULL, 10) == strtoul(port, NULL, 10) && strstr(line, name);
	CHECK(pclose(f) == 0);
	return n;
}

/* A pool of 2n over the n nodes (every URI whole, as salvo-perf -u gives them): 2 on each,
 * asked of salvo and of the nodes. Without shuffle connection i is on node i mod n. */
static void pool_spread(const char *shuffle, const char *name)
{
	struct nodes nd;
	salvo_conf *conf = salvo_conf_new();
	salvo_pool *pool;
	salvo_error err;
	char errstr[256];
	int on[NODES_MAX] = {0};

	need_nodes(&nd);
	CHECK(conf);
	for (int i = 0; i < nd.n; i++)
		if (salvo_conf_set(conf, i ? "uri.add" : "uri", nd.uris[i], errstr,
				   sizeof errstr)) {
			fprintf(stderr, "%s: %s\n", i ? "uri.add" : "uri", errstr);
			CHECK(0);
		}
	CHECK(salvo_conf_set(conf, "endpoints.shuffle", shuffle, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "connection_name", name, errstr, sizeof errstr) == 0);
	OK(salvo_pool_new(conf, 2 * (size_t)nd.n, &pool, &err));
	salvo_conf_destroy(conf);

	for (size_t i = 0; i < 2 * (size_t)nd.n; i++) {
		char got[64];
		int k = 0;

		connected_endpoint(salvo_pool_client(pool, i), got, sizeof got);
		while (k < nd.n && strcmp(got, nd.endpoint[k]))
			k++;
		printf("connection %zu: %s\n", i + 1, got);
		CHECK(k < nd.n);
		if (strcmp(shuffle, "0") == 0)
			CHECK((size_t)k == i % (size_t)nd.n);
		on[k]++;
	}
	for (int k = 0; k < nd.n; k++) {
		int counted = node_connections(nd.endpoint[k], name);

		printf("%s: %d connections (salvo), %d (rabbitmqctl)\n", nd.endpoint[k], on[k],
		       counted);
		CHECK(on[k] == 2 && counted == 2);
	}
	OK(salvo_pool_destroy(pool, 5000, &err));
	free(nd.text);
}

static void case_pool_spread(void)
{
	pool_spread("0", "endpoints-spread");
}

static void case_pool_spread_shuffled(void)
{
	pool_spread("1", "endpoints-shuffled");
}

static const struct test_case cases[] = {
    {"down at start", .run = case_down_at_start},
    {"pool spread", .run = case_pool_spread},
    {"pool spread shuffled", .run = case_pool_spread_shuffled},
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], NULL, NULL);
}
