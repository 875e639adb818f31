/* SPDX-License-Identifier: MIT */
/*
 * The order in which a client or pool tries its endpoints, without a broker: the shuffle
 * (endpoints.shuffle) as a pure function of its seed, each configuration's own order, and
 * salvo_client_new, salvo_client_new_at and salvo_pool_new against endpoints that refuse
 * (sockets bound on 127.0.0.1 that do not listen, held for the whole case so no other
 * program can take the port), where the error names every endpoint's failure in the order
 * tried.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_internal.h"
#include "engine.h"

#include "../check.h"
#include "../rabbit.h"

#define N_EP 3

struct refusing {
	int fd[N_EP];
	unsigned port[N_EP];
};

static void refusing_open(struct refusing *r)
{
	for (int i = 0; i < N_EP; i++)
		r->fd[i] = refusing_port(&r->port[i]);
}

/* A conf of r's endpoints; shuffle is endpoints.shuffle's value. */
static salvo_conf *refusing_conf(const struct refusing *r, const char *shuffle)
{
	salvo_conf *conf = salvo_conf_new();
	char uri[128], errstr[256];

	CHECK(conf);
	for (int i = 0; i < N_EP; i++) {
		/* the first with user and password, the others a whole URI or only host:port */
		snprintf(uri, sizeof uri,
			 i == 1 ? "amqp://guest:guest@127.0.0.1:%u/%%2F" : "amqp://127.0.0.1:%u",
			 r->port[i]);
		CHECK(salvo_conf_set(conf, i ? "uri.add" : "uri", uri, errstr, sizeof errstr) == 0);
	}
	CHECK(salvo_conf_set(conf, "endpoints.shuffle", shuffle, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "log.level", "error", errstr, sizeof errstr) == 0);
	return conf;
}

static void refusing_close(struct refusing *r)
{
	for (int i = 0; i < N_EP; i++)
		close(r->fd[i]);
}

/*
 * The order of the endpoints text names, as indexes into r->port; each must be named once,
 * with its reason, after "every endpoint failed: ". Returns the index named first.
 */
static int order_named(const struct refusing *r, const char *text, int order[N_EP])
{
	const char *at[N_EP];
	const char *head = strstr(text, "every endpoint failed: ");

	CHECK(head);
	for (int i = 0; i < N_EP; i++) {
		char want[96];

		snprintf(want, sizeof want, "connect to 127.0.0.1:%u: Connection refused",
			 r->port[i]);
		at[i] = strstr(text, want);
		if (!at[i])
			fprintf(stderr, "'%s' lacks '%s'\n", text, want);
		CHECK(at[i] && at[i] > head);
		CHECK(strstr(at[i] + 1, want) == NULL);
	}
	for (int i = 0; i < N_EP; i++) {
		order[i] = 0;
		for (int j = 0; j < N_EP; j++)
			order[i] += at[j] < at[i];
	}
	for (int i = 0; i < N_EP; i++)
		if (order[i] == 0)
			return i;
	CHECK(0);
	return -1;
}

/* The same seed gives the same order; every order is a permutation; and over seeds
 * 0..99 each of 3 endpoints comes first at least once (fixed seeds: no chance involved). */
static void case_shuffle_seeded(void)
{
	int first[N_EP] = {0};

	for (uint64_t seed = 0; seed < 100; seed++) {
		struct sv_endpoint a[N_EP], b[N_EP];
		int seen[N_EP] = {0};

		for (int i = 0; i < N_EP; i++) {
			snprintf(a[i].host, sizeof a[i].host, "h%d", i);
			a[i].port = 5000u + (unsigned)i;
			a[i].tls = false;
		}
		memcpy(b, a, sizeof a);
		sv_endpoints_shuffle(a, N_EP, seed);
		sv_endpoints_shuffle(b, N_EP, seed);
		CHECK(memcmp(a, b, sizeof a) == 0);
		for (int i = 0; i < N_EP; i++) {
			unsigned k = a[i].port - 5000u;
			CHECK(k < N_EP && !seen[k]);
			seen[k] = 1;
			CHECK(strcmp(a[i].host, (char[8]){'h', (char)('0' + k), 0}) == 0);
		}
		first[a[0].port - 5000u]++;
	}
	for (int i = 0; i < N_EP; i++) {
		printf("endpoint %d first in %d of 100 orders\n", i, first[i]);
		CHECK(first[i] > 0);
	}
	/* one endpoint, or none, stays as it is */
	struct sv_endpoint one = {.host = "x", .port = 1};
	sv_endpoints_shuffle(&one, 1, 42);
	CHECK(one.port == 1);
	sv_endpoints_shuffle(NULL, 0, 42);
}

/* Without endpoints.shuffle a client tries the endpoints in the order given, and when all
 * refuse its error names each one's failure in that order. */
static void case_order_kept(void)
{
	struct refusing r;
	salvo_conf *conf;

	refusing_open(&r);
	conf = refusing_conf(&r, "0");

	for (int t = 0; t < 5; t++) {
		salvo_client *c = NULL;
		salvo_error err;
		int order[N_EP];

		CHECK(salvo_client_new(conf, &c, &err) == SALVO_ERR_IO && !c);
		if (t == 0)
			printf("%s\n", err.text);
		CHECK(err.status == SALVO_ERR_IO && err.kind == SALVO_ERROR_LOCAL);
		CHECK(order_named(&r, err.text, order) == 0);
		CHECK(order[1] == 1 && order[2] == 2);
	}
	salvo_conf_destroy(conf);
	refusing_close(&r);
}

/*
 * With endpoints.shuffle each configuration draws its own order (as each process would):
 * over 60 configurations each of the 3 endpoints is tried first at least once. If the draw
 * were fair and the claim false, an endpoint would be missed with probability
 * 3 * (2/3)^60, about 8e-11. Clients of one configuration, and of its copies, share its
 * order: salvo_client_new_at(conf, k) starts k places along it.
 */
static void case_shuffle_varies(void)
{
	struct refusing r;
	int first[N_EP] = {0};

	refusing_open(&r);
	for (int t = 0; t < 60; t++) {
		salvo_conf *conf = refusing_conf(&r, "1"), *copy = salvo_conf_dup(conf);
		salvo_client *c = NULL;
		salvo_error err;
		int order[N_EP], again[N_EP], f;
		char got[64];
		size_t size = sizeof got;

		CHECK(copy);
		CHECK(salvo_client_new(conf, &c, &err) == SALVO_ERR_IO && !c);
		f = order_named(&r, err.text, order);
		first[f]++;
		/* the same order again, from the conf and from its copy */
		CHECK(salvo_client_new(copy, &c, &err) == SALVO_ERR_IO && !c);
		CHECK(order_named(&r, err.text, again) == f);
		CHECK(memcmp(order, again, sizeof order) == 0);
		/* one place along it: the second of that order first, then the third, the first */
		for (int k = 1; k < N_EP; k++) {
			CHECK(salvo_client_new_at(conf, (size_t)k, &c, &err) == SALVO_ERR_IO && !c);
			order_named(&r, err.text, again);
			for (int i = 0; i < N_EP; i++)
				CHECK(again[i] == (order[i] + N_EP - k) % N_EP);
		}
		/* the conf itself keeps the order given */
		CHECK(salvo_conf_get(conf, "port", got, &size) == 0);
		CHECK((unsigned)atoi(got) == r.port[0]);
		salvo_conf_destroy(copy);
		salvo_conf_destroy(conf);
	}
	for (int i = 0; i < N_EP; i++) {
		printf("port %u first for %d of 60 configurations\n", r.port[i], first[i]);
		CHECK(first[i] > 0);
	}
	refusing_close(&r);
}

/* A pool's first connection starts at the first endpoint (later ones, at i mod n, are seen
 * against brokers: tests/integration/test_endpoints.c); its error says which connection. */
static void case_pool_first(void)
{
	struct refusing r;
	salvo_conf *conf;
	salvo_pool *pool = NULL;
	salvo_error err;
	int order[N_EP];

	refusing_open(&r);
	conf = refusing_conf(&r, "0");
	CHECK(salvo_pool_new(conf, 4, &pool, &err) == SALVO_ERR_IO && !pool);
	printf("%s\n", err.text);
	CHECK(strncmp(err.text, "pool connection 1 of 4: every endpoint failed: ", 47) == 0);
	CHECK(order_named(&r, err.text, order) == 0);
	CHECK(order[1] == 1 && order[2] == 2);
	salvo_conf_destroy(conf);
	refusing_close(&r);
}

static const struct test_case cases[] = {
    {"shuffle seeded", .run = case_shuffle_seeded},
    {"order kept", .run = case_order_kept},
    {"shuffle varies", .run = case_shuffle_varies},
    {"pool first", .run = case_pool_first},
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], NULL, NULL);
}
