/* SPDX-License-Identifier: MIT */
/*
 * Message properties against a real RabbitMQ: a message with every property and a headers
 * table of every field type read back with basic.get exactly as published; messages
 * without properties after one with them; headers larger than the template's buffer and
 * larger than frame_max; the x-salvo-seq stamp of mandatory publishes in confirm mode added
 * to the caller's headers, and still matching a basic.return.
 *
 * argv[1] names the case. "publish QUEUE" and "dump QUEUE" serve test_props_pika.py: the
 * first publishes the sample message to QUEUE, the second takes one message from QUEUE and
 * prints its properties as canonical text (props_sample.h). Needs SALVO_TEST_URI (skips
 * with 77 without it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salvo.h"

#include "../check.h"
#include "../props_sample.h"
#include "../rabbit.h"

static const char *uri;

/* The next message of q, which must be there. */
static salvo_message *get_one(salvo_channel *ch, const char *q)
{
	salvo_message *m;
	salvo_error err;

	OK(salvo_basic_get(ch, q, true, &m, &err));
	CHECK(m);
	return m;
}

static void check_text(const salvo_props *p, const char *want)
{
	static char text[65536];

	sample_text(p, text, sizeof text);
	if (strcmp(text, want) != 0) {
		fprintf(stderr, "properties differ; got:\n%s\nwanted:\n%s\n", text, want);
		exit(1);
	}
}

static void check_body(const salvo_message *m, const char *want)
{
	size_t len;
	const void *b = salvo_message_body(m, &len);

	CHECK(len == strlen(want) && memcmp(b, want, len) == 0);
}

static void case_roundtrip(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_channel *ch;
	salvo_publisher *p;
	salvo_queue_info q;
	salvo_table *h = sample_headers(), *big = salvo_table_new();
	salvo_props props = sample_props(h), big_props = {.headers = big};
	salvo_message *m;
	salvo_error err;
	char *s = malloc(200000);

	CHECK(h && big && s);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_declare(ch, "", SALVO_EXCLUSIVE, NULL, &q, &err));
	/* A field array is no table of arguments: refused before it reaches the broker. */
	salvo_table *arr = salvo_array_new();
	CHECK(arr && salvo_queue_declare(ch, "salvo.test.props.never", 0, arr, NULL, &err) ==
			 SALVO_ERR_INVALID_ARGUMENT);
	salvo_table_destroy(arr);
	OK(salvo_publisher_new(c, NULL, &p, &err));
	/* With properties; then without (the cached template must not keep them); then
	 * persistent only; then headers over the template's 1024-byte buffer. */
	OK(salvo_publish_msg(p, &(salvo_msg){"", q.name, "one", 3, 0, .props = &props}, 5000, NULL,
			     &err));
	OK(salvo_publish(p, "", q.name, "two", 3, 0, 5000, &err));
	OK(salvo_publish(p, "", q.name, "three", 5, SALVO_MSG_PERSISTENT, 5000, &err));
	memset(s, 'b', 3000);
	s[3000] = '\0';
	CHECK(salvo_table_add_string(big, "big", s) == 0);
	OK(salvo_publish_msg(
	    p, &(salvo_msg){"", q.name, "four", 4, SALVO_MSG_PERSISTENT, .props = &big_props}, 5000,
	    NULL, &err));
	/* A content header cannot be split: over frame_max (131072) is refused locally. */
	memset(s, 'c', 199999);
	s[199999] = '\0';
	CHECK(salvo_table_add_string(big, "bigger", s) == 0);
	CHECK(salvo_publish_msg(p, &(salvo_msg){"", q.name, "five", 4, 0, .props = &big_props},
				5000, NULL, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(strstr(err.text, "content header") != NULL);
	OK(salvo_publisher_close(p, 5000, &err));

	m = get_one(ch, q.name);
	check_body(m, "one");
	check_text(salvo_message_props(m), sample_expected);
	salvo_message_destroy(m);
	m = get_one(ch, q.name);
	check_body(m, "two");
	check_text(salvo_message_props(m), "");
	salvo_message_destroy(m);
	m = get_one(ch, q.name);
	check_body(m, "three");
	check_text(salvo_message_props(m), "delivery_mode=2\n");
	salvo_message_destroy(m);
	m = get_one(ch, q.name);
	check_body(m, "four");
	{
		static char want[8192];
		snprintf(want, sizeof want, "delivery_mode=2\nheaders\nh big S ");
		for (int i = 0; i < 3000; i++)
			strcat(want, "62");
		strcat(want, "\n");
		check_text(salvo_message_props(m), want);
	}
	salvo_message_destroy(m);
	OK(salvo_basic_get(ch, q.name, true, &m, &err));
	CHECK(m == NULL);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
	salvo_table_destroy(h);
	salvo_table_destroy(big);
	free(s);
}

/*
 * In confirm mode a mandatory publish carries x-salvo-seq: it must come first, before the
 * caller's headers (all kept), hold the message's sequence number, and still let a
 * basic.return be matched to its message.
 */
static void case_stamp(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC};
	salvo_channel *ch;
	salvo_publisher *p;
	salvo_queue_info q;
	salvo_table *h = sample_headers();
	salvo_props props = sample_props(h);
	salvo_message *m;
	salvo_error err;
	uint64_t seq;
	static char want[8192];

	CHECK(h);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_declare(ch, "", SALVO_EXCLUSIVE, NULL, &q, &err));
	OK(salvo_publisher_new(c, &opts, &p, &err));
	OK(salvo_publish(p, "", q.name, "a", 1, 0, 5000, &err));
	OK(salvo_publish_msg(p,
			     &(salvo_msg){"", q.name, "b", 1, SALVO_MSG_MANDATORY, .props = &props},
			     5000, &seq, &err));
	CHECK(seq == 2);
	/* Unroutable: the return must be matched through the stamp to this message. */
	CHECK(salvo_publish_msg(p,
				&(salvo_msg){"", "salvo.test.props.nowhere", "c", 1,
					     SALVO_MSG_MANDATORY, .props = &props},
				5000, &seq, &err) == SALVO_ERR_RETURNED);
	CHECK(seq == 3 && err.reply_code == 312);
	OK(salvo_publisher_close(p, 5000, &err));

	m = get_one(ch, q.name);
	check_body(m, "a");
	salvo_message_destroy(m);
	m = get_one(ch, q.name);
	check_body(m, "b");
	/* The sample's text with the stamp as the first header. */
	const char *hdrs = strstr(sample_expected, "headers\n") + strlen("headers\n");
	snprintf(want, sizeof want, "%.*sh x-salvo-seq l 2\n%s", (int)(hdrs - sample_expected),
		 sample_expected, hdrs);
	check_text(salvo_message_props(m), want);
	salvo_message_destroy(m);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
	salvo_table_destroy(h);
}

/* For test_props_pika.py: publish the sample to an existing queue. */
static void run_publish(const char *queue)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC};
	salvo_publisher *p;
	salvo_table *h = sample_headers();
	salvo_props props = sample_props(h);
	salvo_error err;

	CHECK(h);
	OK(salvo_publisher_new(c, &opts, &p, &err));
	OK(salvo_publish_msg(p, &(salvo_msg){"", queue, "from salvo", 10, 0, .props = &props}, 5000,
			     NULL, &err));
	OK(salvo_publisher_close(p, 5000, &err));
	rabbit_close(c, 10000);
	salvo_table_destroy(h);
}

/* For test_props_pika.py: print the properties of the next message of queue. */
static void run_dump(const char *queue)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_channel *ch;
	salvo_message *m;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	m = get_one(ch, queue);
	sample_dump(stdout, salvo_message_props(m));
	salvo_message_destroy(m);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

static const struct test_case cases[] = {
    {"roundtrip", .run = case_roundtrip},
    {"stamp", .run = case_stamp},
};

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "publish") == 0) {
		uri = rabbit_test_uri();
		run_publish(argv[2]);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "dump") == 0) {
		uri = rabbit_test_uri();
		run_dump(argv[2]);
		return 0;
	}
	uri = getenv("SALVO_TEST_URI");
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], rabbit_need_broker,
			 NULL);
}
