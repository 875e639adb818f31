/* SPDX-License-Identifier: MIT */
/*
 * Credentials that change, AMQPLAIN and the broker's server properties, against the test
 * broker (RabbitMQ 3.10, its internal user database). Each credentials case makes a user of
 * its own (rabbitmqctl add_user), connects as it, changes its password with rabbitmqctl
 * change_password and closes the connection with rabbitmqctl close_connection, then
 * watches what the reconnection does:
 *
 *   update-secret                 the secret given is the reconnection's password
 *   update-secret unchecked       the internal backend accepts any secret (it checks none);
 *                                 the wrong one then fails the reconnection: 403, giving up
 *   update-secret reconnecting    given while reconnecting: kept, 0 at once, reconnected
 *   callback                      the callback's new password: reconnected
 *   callback retries              the old password (403) and a failure of the callback
 *                                 are retried with backoff, then the new one: reconnected
 *   amqplain                      a login with AMQPLAIN; a wrong password: 403
 *   server properties             product, capabilities, read through the table iterator
 *   server properties reconnect   read from another thread throughout a reconnection
 *
 * Needs SALVO_TEST_URI and SALVO_SOURCE_ROOT (rabbitmqctl through scripts/rabbitmq.sh);
 * skips (77) without them.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include "../rabbit.h"

static char user[64];	   /* the case's user, "" when it made none */
static char conn_name[64]; /* its connection's name, for close_connection */
static char hostport[64];  /* of the test broker: "127.0.0.1:5400" */

static int before(void)
{
	const char *uri;

	if (rabbit_need_broker())
		return 77;
	uri = getenv("SALVO_TEST_URI");
	if (!getenv("SALVO_SOURCE_ROOT")) {
		fprintf(stderr, "SALVO_SOURCE_ROOT not set\n");
		return 77;
	}
	rabbit_need_ctl(uri);
	CHECK(strchr(uri, '@') && strlen(strchr(uri, '@') + 1) < sizeof hostport);
	snprintf(hostport, sizeof hostport, "%s", strchr(uri, '@') + 1);
	user[0] = '\0';
	return 0;
}

static void after(void)
{
	if (user[0])
		rabbit_ctl("delete_user '%s'", user);
	user[0] = '\0';
}

/* A user of this case's own with password "first", allowed everything on "/". */
static void make_user(const char *tag)
{
	snprintf(user, sizeof user, "salvo_creds_%s_%d", tag, (int)getpid());
	snprintf(conn_name, sizeof conn_name, "salvo-creds-%s-%d", tag, (int)getpid());
	rabbit_ctl("add_user '%s' first", user);
	rabbit_ctl("set_permissions -p / '%s' '.*' '.*' '.*'", user);
}

/* The credentials callback of these cases: password "first" for the calls before
 * switch_at (counted from 1), then "second"; call fail_at (0: none) fails instead. */
struct answers {
	pthread_mutex_t mu;
	unsigned calls, switch_at, fail_at;
};

static int answer(void *arg, salvo_credentials *cred, salvo_error *err)
{
	struct answers *a = arg;
	unsigned n;

	pthread_mutex_lock(&a->mu);
	n = ++a->calls;
	pthread_mutex_unlock(&a->mu);
	if (n == a->fail_at) {
		snprintf(err->text, sizeof err->text, "token service down");
		return SALVO_ERR_IO;
	}
	return salvo_credentials_set(cred, NULL, n < a->switch_at ? "first" : "second");
}

static unsigned calls(struct answers *a)
{
	unsigned n;

	pthread_mutex_lock(&a->mu);
	n = a->calls;
	pthread_mutex_unlock(&a->mu);
	return n;
}

/* A client logged in as the case's user with password "first" (given by the callback
 * when there is one), reconnecting fast. */
static salvo_client *connect_as_user(struct answers *a, const char *initial_delay)
{
	char uri[256], errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_error err;

	snprintf(uri, sizeof uri, "amqp://%s:%s@%s", user, a ? "not-asked-for" : "first",
		 hostport);
	CHECK(conf && salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "connection_name", conn_name, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "reconnect.initial_delay", initial_delay, errstr,
			     sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "reconnect.max_delay", "200", errstr, sizeof errstr) == 0);
	if (a)
		CHECK(salvo_conf_set_credentials_cb(conf, answer, a) == 0);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	return c;
}

/* What a reconnection came to: its events up to RECONNECTED or GIVING_UP (30 s at most;
 * one of them must come). */
struct outcome {
	bool lost, reconnected, gave_up;
	unsigned attempts; /* RECONNECTING events */
	salvo_error attempt_err[8]; /* each RECONNECTING event's error, by attempt - 1 */
	salvo_error end;	    /* GIVING_UP's */
};

static void await_outcome(salvo_client *c, struct outcome *o)
{
	salvo_event ev;

	memset(o, 0, sizeof *o);
	while (!o->reconnected && !o->gave_up && salvo_client_poll_event(c, &ev, 30000) == 0) {
		char line[512];

		printf("  event %d attempt %u: %s\n", ev.kind, ev.attempt,
		       salvo_error_format(&ev.error, line, sizeof line));
		o->lost |= ev.kind == SALVO_EVENT_CONNECTION_LOST;
		o->reconnected = ev.kind == SALVO_EVENT_RECONNECTED;
		o->gave_up = ev.kind == SALVO_EVENT_GIVING_UP;
		if (ev.kind == SALVO_EVENT_GIVING_UP)
			o->end = ev.error;
		if (ev.kind == SALVO_EVENT_RECONNECTING && o->attempts < 8)
			o->attempt_err[o->attempts++] = ev.error;
	}
	CHECK(o->reconnected || o->gave_up);
}

/* The connection works: a channel opens and a queue is declared and deleted on it. */
static void check_usable(salvo_client *c)
{
	salvo_channel *ch;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_declare(ch, "", SALVO_EXCLUSIVE, NULL, NULL, &err));
	OK(salvo_channel_close(ch, &err));
}

static void case_update_secret(void)
{
	salvo_client *c;
	salvo_error err;
	struct outcome o;

	make_user("update");
	c = connect_as_user(NULL, "20");
	rabbit_ctl("change_password '%s' second", user);
	OK(salvo_client_update_secret(c, "second", "password rotated", &err));
	/* The login it made stays: the connection goes on. */
	check_usable(c);
	close_connection(conn_name, "forced by test_creds");
	await_outcome(c, &o);
	/* "first" would be refused now: the reconnection logged in with "second". */
	CHECK(o.lost && o.reconnected && o.attempts == 1);
	CHECK(salvo_client_reconnects(c) == 1);
	check_usable(c);
	rabbit_close(c, 5000);
}

/*
 * RabbitMQ 3.10's internal user database checks no secret update-secret brings: the
 * backend's state cannot expire (state_can_expire() is false), so rabbit_access_control
 * keeps the login as it is and the broker answers update-secret-ok. The wrong secret is
 * only found out at the next login: the reconnection is refused, 403, and salvo gives up
 * (no callback), the secret masked in what it reports.
 */
static void case_update_secret_unchecked(void)
{
	salvo_client *c;
	salvo_error err;
	struct outcome o;
	char line[512];

	make_user("unchecked");
	c = connect_as_user(NULL, "20");
	OK(salvo_client_update_secret(c, "not-the-password", NULL, &err));
	check_usable(c);
	close_connection(conn_name, "forced by test_creds");
	await_outcome(c, &o);
	CHECK(o.lost && o.gave_up && o.attempts == 1);
	CHECK(o.end.status == 403 && o.end.reply_code == 403);
	salvo_error_format(&o.end, line, sizeof line);
	CHECK(strstr(line, "ACCESS_REFUSED") && !strstr(line, "not-the-password"));
	/* The client is closed with that error. */
	CHECK(salvo_client_update_secret(c, "second", NULL, &err) == 403);
	salvo_client_destroy(c);
}

/* Between connections there is nothing to send: the secret is kept for the next attempt,
 * and the call returns at once. */
static void case_update_secret_reconnecting(void)
{
	salvo_client *c;
	salvo_error err;
	salvo_event ev;
	struct outcome o;
	double t0;

	make_user("recovering");
	/* The first attempt comes 1 to 2 s after the loss: time to call in between. */
	c = connect_as_user(NULL, "2000");
	rabbit_ctl("change_password '%s' second", user);
	close_connection(conn_name, "forced by test_creds");
	CHECK(salvo_client_poll_event(c, &ev, 10000) == 0);
	CHECK(ev.kind == SALVO_EVENT_CONNECTION_LOST);
	t0 = now_s();
	OK(salvo_client_update_secret(c, "second", "token expired", &err));
	printf("  update-secret while reconnecting: %.1f ms\n", (now_s() - t0) * 1e3);
	await_outcome(c, &o);
	CHECK(!o.lost); /* the loss was taken above */
	CHECK(o.reconnected && o.attempts == 1);
	check_usable(c);
	rabbit_close(c, 5000);
}

static void case_callback(void)
{
	struct answers a = {PTHREAD_MUTEX_INITIALIZER, 0, 2, 0};
	salvo_client *c;
	struct outcome o;

	make_user("callback");
	c = connect_as_user(&a, "20");
	CHECK(calls(&a) == 1);
	rabbit_ctl("change_password '%s' second", user);
	close_connection(conn_name, "forced by test_creds");
	await_outcome(c, &o);
	CHECK(o.lost && o.reconnected && o.attempts == 1);
	CHECK(calls(&a) == 2);
	check_usable(c);
	rabbit_close(c, 5000);
}

/*
 * The callback keeps answering the old password for one attempt (403: retried, since a
 * callback may know better next time), then fails once (retried), then gives the new one.
 */
static void case_callback_retries(void)
{
	struct answers a = {PTHREAD_MUTEX_INITIALIZER, 0, 4, 3};
	salvo_client *c;
	struct outcome o;

	make_user("retries");
	c = connect_as_user(&a, "20");
	rabbit_ctl("change_password '%s' second", user);
	close_connection(conn_name, "forced by test_creds");
	await_outcome(c, &o);
	CHECK(o.lost && o.reconnected && !o.gave_up && o.attempts == 3);
	CHECK(o.attempt_err[0].status == 320); /* the loss: CONNECTION_FORCED */
	CHECK(o.attempt_err[1].status == 403 && o.attempt_err[1].reply_code == 403);
	CHECK(o.attempt_err[2].status == SALVO_ERR_IO &&
	      o.attempt_err[2].kind == SALVO_ERROR_LOCAL);
	CHECK(!strcmp(o.attempt_err[2].text, "credentials callback failed: token service down"));
	CHECK(calls(&a) == 4);
	check_usable(c);
	rabbit_close(c, 5000);
}

static void case_amqplain(void)
{
	const char *uri = getenv("SALVO_TEST_URI");
	char wrong[256], errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c = rabbit_connect(uri, "auth_mechanism", "amqplain", NULL);
	salvo_error err;

	check_usable(c);
	rabbit_close(c, 5000);
	snprintf(wrong, sizeof wrong, "amqp://guest:not-guest@%s?auth_mechanism=amqplain",
		 hostport);
	CHECK(conf && salvo_conf_set(conf, "uri", wrong, errstr, sizeof errstr) == 0);
	CHECK(salvo_client_new(conf, &c, &err) == 403);
	printf("  %s\n", err.text);
	CHECK(err.reply_code == 403 && err.kind == SALVO_ERROR_CONNECTION);
	CHECK(strstr(err.text, "ACCESS_REFUSED") && !strstr(err.text, "not-guest"));
	/* RabbitMQ names the mechanism it refused the login with. */
	CHECK(strstr(err.text, "mechanism AMQPLAIN") != NULL);
	salvo_conf_destroy(conf);
}

/* The string value of key in t's top level ("" if absent or not a string), into buf. */
static const char *string_of(const salvo_table *t, const char *key, char *buf, size_t size)
{
	salvo_table_iter it;
	salvo_field f;

	buf[0] = '\0';
	salvo_table_iter_init(&it, t);
	while (salvo_table_next(&it, &f) == 1)
		if (!strcmp(f.key, key) && f.type == SALVO_FIELD_STRING)
			snprintf(buf, size, "%.*s", (int)f.v.bytes.len, (const char *)f.v.bytes.ptr);
	return buf;
}

/* The capabilities in t: each boolean entry's name and value, through the nested
 * iterator; returns how many. */
static int capabilities(const salvo_table *t, bool *confirms, bool *cancel_notify, bool *nack)
{
	salvo_table_iter it;
	salvo_field f, cap;
	int n = 0;

	salvo_table_iter_init(&it, t);
	while (salvo_table_next(&it, &f) == 1) {
		if (strcmp(f.key, "capabilities") || f.type != SALVO_FIELD_TABLE)
			continue;
		while (salvo_table_next(&f.v.nested, &cap) == 1) {
			CHECK(cap.type == SALVO_FIELD_BOOL);
			n++;
			if (!strcmp(cap.key, "publisher_confirms"))
				*confirms = cap.v.b;
			if (!strcmp(cap.key, "consumer_cancel_notify"))
				*cancel_notify = cap.v.b;
			if (!strcmp(cap.key, "basic.nack"))
				*nack = cap.v.b;
		}
	}
	return n;
}

static void check_properties(salvo_client *c, bool verbose)
{
	salvo_table *props = NULL, *outer;
	salvo_error err;
	char product[64], version[64], platform[64];
	bool confirms = false, cancel_notify = false, nack = false;
	int n;

	OK(salvo_client_server_properties(c, &props, &err));
	CHECK(!strcmp(string_of(props, "product", product, sizeof product), "RabbitMQ"));
	CHECK(string_of(props, "version", version, sizeof version)[0]);
	CHECK(string_of(props, "platform", platform, sizeof platform)[0]);
	n = capabilities(props, &confirms, &cancel_notify, &nack);
	CHECK(n >= 3 && confirms && cancel_notify && nack);
	if (verbose)
		printf("  %s %s on %s, %d capabilities\n", product, version, platform, n);
	/* The copy is the caller's: it nests in another table (its depth is known). */
	outer = salvo_table_new();
	CHECK(outer && salvo_table_add_table(outer, "server", props) == 0);
	salvo_table_destroy(outer);
	salvo_table_destroy(props);
}

static void case_server_properties(void)
{
	salvo_client *c = rabbit_connect(getenv("SALVO_TEST_URI"), NULL);
	salvo_table *t;
	salvo_error err;
	char name[64];

	check_properties(c, true);
	{
		salvo_table *props;
		OK(salvo_client_server_properties(c, &props, &err));
		/* cluster_name is RabbitMQ's, present on every node */
		CHECK(string_of(props, "cluster_name", name, sizeof name)[0]);
		salvo_table_destroy(props);
	}
	CHECK(salvo_client_server_capability(c, "publisher_confirms"));
	CHECK(salvo_client_server_capability(c, "consumer_cancel_notify"));
	CHECK(salvo_client_server_capability(c, "basic.nack"));
	CHECK(!salvo_client_server_capability(c, "salvo_made_up_capability"));
	CHECK(!salvo_client_server_capability(c, "product")); /* not a capability */
	CHECK(!salvo_client_server_capability(c, NULL));
	CHECK(!salvo_client_server_capability(NULL, "basic.nack"));
	t = (salvo_table *)&name; /* any non-NULL value: it must stay untouched */
	CHECK(salvo_client_server_properties(NULL, &t, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(t == (salvo_table *)&name);
	CHECK(salvo_client_server_properties(c, NULL, &err) == SALVO_ERR_INVALID_ARGUMENT);
	rabbit_close(c, 5000);
}

/* Another thread reads the properties over and over while the connection is lost and
 * made again: every copy is whole. */
struct reader {
	salvo_client *c;
	atomic_bool stop;
	unsigned reads;
};

static void *read_properties(void *arg)
{
	struct reader *r = arg;

	while (!atomic_load(&r->stop)) {
		check_properties(r->c, false);
		CHECK(salvo_client_server_capability(r->c, "basic.nack"));
		r->reads++;
	}
	return NULL;
}

static void case_server_properties_reconnect(void)
{
	struct reader r = {0};
	pthread_t t;
	struct outcome o;

	snprintf(conn_name, sizeof conn_name, "salvo-creds-props-%d", (int)getpid());
	r.c = rabbit_connect(getenv("SALVO_TEST_URI"), "connection_name", conn_name,
			     "reconnect.initial_delay", "20", NULL);
	CHECK(pthread_create(&t, NULL, read_properties, &r) == 0);
	close_connection(conn_name, "forced by test_creds");
	await_outcome(r.c, &o);
	CHECK(o.lost && o.reconnected);
	check_properties(r.c, true);
	atomic_store(&r.stop, true);
	CHECK(pthread_join(t, NULL) == 0);
	printf("  %u reads meanwhile\n", r.reads);
	CHECK(r.reads > 0);
	rabbit_close(r.c, 5000);
}

static const struct test_case cases[] = {
    {"update-secret", .run = case_update_secret},
    {"update-secret unchecked", .run = case_update_secret_unchecked},
    {"update-secret reconnecting", .run = case_update_secret_reconnecting},
    {"callback", .run = case_callback},
    {"callback retries", .run = case_callback_retries},
    {"amqplain", .run = case_amqplain},
    {"server properties", .run = case_server_properties},
    {"server properties reconnect", .run = case_server_properties_reconnect},
};

int main(int argc, char **argv)
{
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], before, after);
}
