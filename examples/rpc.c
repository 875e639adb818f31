/* SPDX-License-Identifier: MIT */
/*
 * RPC over direct reply-to, both sides in one program. The server is a listener on the
 * queue "salvo.example.rpc" whose callback answers each request with
 * salvo_message_reply (to the request's reply_to, with its correlation_id) on a publisher
 * the callback owns; the client is an RPC client (salvo_rpc_new) whose calls publish a
 * request and wait for its reply, which comes back on the client's own channel with no
 * reply queue declared.
 *
 *	rpc [URI]
 *
 * It asks for the squares of 1 .. 10 and exits 0 when every answer is right.
 */
#include <stdlib.h>
#include <string.h>

#include "example.h"

#define QUEUE "salvo.example.rpc"

/* The server's callback: "n" in, "n*n" out. arg is its publisher, used by this thread
 * only (the listener's). */
static salvo_listener_action serve(salvo_message *request, void *arg)
{
	salvo_publisher *replies = arg;
	size_t len;
	const char *body = salvo_message_body(request, &len);
	char text[32], answer[32];
	salvo_error err;
	long n;
	int rc;

	snprintf(text, sizeof text, "%.*s", (int)(len < 20 ? len : 20), body);
	n = strtol(text, NULL, 10);
	snprintf(answer, sizeof answer, "%ld", n * n);
	rc = salvo_message_reply(request, replies,
				 &(salvo_msg){.body = answer, .len = strlen(answer)}, 5000, &err);
	if (rc) {
		char line[512];
		fprintf(stderr, "reply: %s\n", salvo_error_format(&err, line, sizeof line));
	}
	return SALVO_LISTENER_ACK;
}

int main(int argc, char **argv)
{
	salvo_client *client = example_connect(argc, argv);
	salvo_listener_opts lo = {.declare = true, .declare_flags = SALVO_AUTO_DELETE};
	salvo_publisher *replies;
	salvo_listener *server;
	salvo_rpc *rpc;
	salvo_error err;
	int wrong = 0;

	/* The server: a publisher for its replies, and a listener that uses it. */
	example_check(salvo_publisher_new(client, NULL, &replies, &err), &err, "publisher");
	example_check(salvo_listener_new(client, QUEUE, serve, replies, &lo, &server, &err), &err,
		      "listener");

	/* The client: each call waits at most 5 s for its reply. */
	example_check(salvo_rpc_new(client, NULL, &rpc, &err), &err, "rpc");
	for (int i = 1; i <= 10; i++) {
		char question[16], text[32];
		salvo_msg request = {.exchange = "", .routing_key = QUEUE, .body = question};
		salvo_message *reply;
		size_t len;
		const char *answer;

		request.len = (size_t)snprintf(question, sizeof question, "%d", i);
		example_check(salvo_rpc_call(rpc, &request, 5000, &reply, &err), &err, "call");
		answer = salvo_message_body(reply, &len);
		/* A body is bytes, not a string: no NUL after it. */
		snprintf(text, sizeof text, "%.*s", (int)(len < 20 ? len : 20), answer);
		printf("%d squared is %s\n", i, text);
		if (strtol(text, NULL, 10) != (long)i * i)
			wrong++;
		salvo_message_destroy(reply);
	}

	salvo_rpc_stats st;
	salvo_rpc_get_stats(rpc, &st);
	printf("%llu calls, %llu replies\n", (unsigned long long)st.calls,
	       (unsigned long long)st.replies);
	salvo_rpc_destroy(rpc);
	salvo_listener_destroy(server);
	example_check(salvo_publisher_close(replies, 5000, &err), &err, "publisher close");
	example_close(client);
	return wrong || st.replies != 10 ? 1 : 0;
}
