/* SPDX-License-Identifier: MIT */
/*
 * The cluster of scripts/rabbitmq.sh itself (cluster start, run by scripts/test.sh):
 *
 *   script kill restart   status says every node runs; cluster kill 3 stops node 3 (status
 *                         fails and says so, its port refuses a client), the others go on;
 *                         cluster restart 3 brings it back: status passes, a client on
 *                         node 3 alone connects, and node 3 lists every node running.
 *   quorum members        a quorum queue declared on node 1 has a member on every node
 *                         (rabbitmqctl list_queues name type members), and 1,000 messages
 *                         published to it on node 1 are read on node 3.
 */
#include "../check.h"
#include "../rabbit.h"
#include "cluster.h"

/* Lines of status that contain both a and b. */
static int status_lines(const char *status, const char *a, const char *b)
{
	int n = 0;

	for (const char *s = status; *s;) {
		size_t k = strcspn(s, "\n");
		char line[512];

		snprintf(line, sizeof line, "%.*s", (int)k, s);
		n += strstr(line, a) && strstr(line, b);
		s += k + (s[k] == '\n');
	}
	return n;
}

static void case_script_kill_restart(void)
{
	char status[4096], errstr[256], out[4096];
	salvo_conf *conf;
	salvo_client *c;
	salvo_error err;
	int rc;

	CHECK(cluster_script("status", 0, status, sizeof status) == 0);
	printf("%s", status);
	CHECK(status_lines(status, " running", "beam_pid=") == cluster_n);

	CHECK(cluster_script("kill", 3, NULL, 0) == 0);
	rc = cluster_script("status", 0, status, sizeof status);
	printf("after kill 3 (status %d):\n%s", rc, status);
	CHECK(rc != 0);
	CHECK(status_lines(status, "node=3 ", " stopped") == 1);
	CHECK(status_lines(status, " running", "beam_pid=") == cluster_n - 1);
	/* Its port refuses: a client of node 3 alone cannot connect. */
	conf = salvo_conf_new();
	CHECK(conf && salvo_conf_set(conf, "uri", cluster_uri[2], errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "connection_timeout", "2000", errstr, sizeof errstr) == 0);
	rc = salvo_client_new(conf, &c, &err);
	printf("connect to node 3: %d (%s)\n", rc, rc ? err.text : "");
	CHECK(rc == SALVO_ERR_IO);
	/* Killing a stopped node is refused. */
	CHECK(cluster_script("kill", 3, NULL, 0) != 0);

	CHECK(cluster_script("restart", 3, out, sizeof out) == 0);
	CHECK(strncmp(out, cluster_uri[2], strlen(cluster_uri[2])) == 0);
	CHECK(cluster_script("status", 0, status, sizeof status) == 0);
	printf("after restart 3:\n%s", status);
	CHECK(status_lines(status, " running", "beam_pid=") == cluster_n);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	rabbit_close(c, 5000);
	/* Node 3 is a member again, not a node of its own. */
	CHECK(cluster_script("ctl 3 -q cluster_status --formatter json | python3 -c 'import "
			     "json,sys; print(len(json.load(sys.stdin)[\"running_nodes\"]))'",
			     0, out, sizeof out) == 0);
	printf("node 3 lists %s", out);
	CHECK(atoi(out) == cluster_n);
}

static void case_quorum_members(void)
{
	const char *q = "salvo.test.cluster.members";
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC};
	salvo_table *args = salvo_table_new();
	salvo_client *c1, *c3;
	salvo_channel *ch;
	salvo_publisher *p;
	salvo_message *m;
	salvo_error err;
	char line[1024];
	int got = 0;

	CHECK(args && salvo_table_add_string(args, "x-queue-type", "quorum") == 0);
	c1 = rabbit_connect(cluster_uri[0], NULL);
	OK(salvo_channel_open(c1, &ch, &err));
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_queue_declare(ch, q, SALVO_DURABLE, args, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	cluster_queue_line(1, q, line, sizeof line);
	printf("%s", line);
	CHECK(strstr(line, "quorum"));
	for (int i = 1; i <= cluster_n; i++) {
		char node[64];

		snprintf(node, sizeof node, "salvo-cluster-%d-%d@",
			 atoi(strrchr(cluster_uri[0], ':') + 1), i);
		CHECK(strstr(line, node));
	}
	OK(salvo_publisher_new(c1, &opts, &p, &err));
	for (int i = 0; i < 1000; i++)
		OK(salvo_publish(p, "", q, "m", 1, SALVO_MSG_PERSISTENT, 10000, &err));
	OK(salvo_publisher_wait_confirms(p, 30000, &err));
	OK(salvo_publisher_close(p, 5000, &err));

	c3 = rabbit_connect(cluster_uri[2], NULL);
	OK(salvo_channel_open(c3, &ch, &err));
	for (;;) {
		OK(salvo_basic_get(ch, q, true, &m, &err));
		if (!m)
			break;
		got++;
		salvo_message_destroy(m);
	}
	printf("read %d on node 3\n", got);
	CHECK(got == 1000);
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c3, 5000);
	rabbit_close(c1, 5000);
	salvo_table_destroy(args);
}

static const struct test_case cases[] = {
    {"script kill restart", .run = case_script_kill_restart},
    {"quorum members", .run = case_quorum_members},
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], cluster_need, NULL);
}
