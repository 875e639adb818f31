/* SPDX-License-Identifier: MIT */
/*
 * A mandatory message no queue takes comes back (basic.return), and the application gets
 * it whole: reply code, exchange, routing key, properties and body. Here with async
 * confirms, where it comes with the message's outcome; best effort has on_return instead,
 * and sync salvo_publisher_returned (salvo.h, salvo_returned).
 */
#include <string.h>

#include "example.h"

static int returned;

static void on_outcome(const salvo_outcome *o, void *arg)
{
	const salvo_returned *r = o->returned;

	(void)arg;
	if (o->kind != SALVO_OUTCOME_RETURNED || !r || r->dropped)
		return;
	printf("message %llu returned: %u %s, exchange '%s', routing key '%s'\n",
	       (unsigned long long)o->seq, r->reply_code, r->reply_text, r->exchange,
	       r->routing_key);
	printf("  content_type %s, correlation_id %s\n", r->props->content_type,
	       r->props->correlation_id);
	printf("  body (%zu bytes): %.*s\n", r->len, (int)r->len, (const char *)r->body);
	returned +=
	    r->reply_code == 312 && r->len == 19 && !memcmp(r->body, "order 17: 3 widgets", 19);
}

int main(int argc, char **argv)
{
	salvo_client *client = example_connect(argc, argv);
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .on_outcome = on_outcome};
	salvo_props props = {.content_type = "text/plain", .correlation_id = "order-17"};
	salvo_msg msg = {.exchange = "amq.direct",
			 .routing_key = "no.queue.is.bound.to.this",
			 .body = "order 17: 3 widgets",
			 .len = 19,
			 .flags = SALVO_MSG_MANDATORY,
			 .props = &props};
	salvo_publisher *publisher;
	salvo_error err;
	int rc;

	example_check(salvo_publisher_new(client, &opts, &publisher, &err), &err, "publisher");
	example_check(salvo_publish_msg(publisher, &msg, 5000, NULL, &err), &err, "publish");
	/* Runs on_outcome for it; says SALVO_ERR_RETURNED, since one came back. */
	rc = salvo_publisher_wait_confirms(publisher, 5000, &err);
	printf("wait_confirms: %s\n", salvo_err2str(rc));
	salvo_publisher_close(publisher, 5000, NULL);
	example_close(client);
	return rc == SALVO_ERR_RETURNED && returned == 1 ? 0 : 1;
}
