/* SPDX-License-Identifier: MIT */
/*
 * Golden vectors: frames written out byte by byte from the AMQP 0-9-1 specification, to
 * catch an encoder and decoder that agree with each other but not with the wire.
 */
#include "../support.h"

#include "frame.h"
#include "methods.h"
#include "salvo.h"
#include "template.h"

#define B(s) ((struct sv_bytes){(const uint8_t *)(s), sizeof(s) - 1})

static void assert_bytes(struct sv_bytes got, const char *want, size_t n)
{
	assert_int_equal(got.len, n);
	assert_memory_equal(got.ptr, want, n);
}

/* Encode m on channel ch and compare the whole frame with want; then decode want and
 * return the decoded frame for field checks. */
static void check_method_frame(const struct sv_method *m, uint16_t ch, const uint8_t *want,
			       size_t want_len, struct sv_decoded_frame *d)
{
	uint8_t buf[512];
	struct sv_codec_error err;
	size_t n = sv_frame_put_method(buf, sizeof buf, ch, m, &err);

	if (!n)
		fail_msg("encode: %s", err.reason);
	assert_int_equal(n, want_len);
	assert_memory_equal(buf, want, want_len);
	if (sv_frame_decode(want, want_len, SV_FRAME_MIN_SIZE, d, &err) != (ssize_t)want_len)
		fail_msg("decode: %s", err.reason);
	assert_int_equal(d->frame.type, SV_FRAME_METHOD);
	assert_int_equal(d->frame.channel, ch);
	assert_int_equal(d->u.method.id, m->id);
}

static void test_connection_start_ok(void **state)
{
	(void)state;
	static const uint8_t want[] = {
		1, 0, 0, 0, 0, 0, 54,				/* method frame, channel 0 */
		0, 10, 0, 11,					/* connection.start-ok */
		0, 0, 0, 18,					/* client-properties */
		7, 'p', 'r', 'o', 'd', 'u', 'c', 't', 'S', 0, 0, 0, 5, 's', 'a', 'l', 'v', 'o',
		5, 'P', 'L', 'A', 'I', 'N',			/* mechanism */
		0, 0, 0, 12, 0, 'g', 'u', 'e', 's', 't', 0, 'g', 'u', 'e', 's', 't',
		5, 'e', 'n', '_', 'U', 'S',			/* locale */
		0xCE,
	};
	uint8_t tbuf[64];
	struct sv_table_writer w;
	struct sv_codec_error err;
	struct sv_method m = {.id = SV_CONNECTION_START_OK};
	struct sv_decoded_frame d;
	struct sv_field f;

	sv_table_writer_init(&w, tbuf, sizeof tbuf);
	sv_tw_str(&w, "product", "salvo");
	assert_int_equal(sv_table_writer_finish(&w, &m.a.connection_start_ok.client_properties,
						&err),
			 0);
	m.a.connection_start_ok.mechanism = B("PLAIN");
	m.a.connection_start_ok.response = B("\0guest\0guest");
	m.a.connection_start_ok.locale = B("en_US");
	check_method_frame(&m, 0, want, sizeof want, &d);

	const struct sv_connection_start_ok *a = &d.u.method.a.connection_start_ok;
	assert_true(sv_table_find(a->client_properties, "product", &f));
	assert_int_equal(f.type, SV_FIELD_LONGSTR);
	assert_bytes(f.v.str, "salvo", 5);
	assert_false(sv_table_find(a->client_properties, "produc", &f));
	assert_bytes(a->mechanism, "PLAIN", 5);
	assert_bytes(a->response, "\0guest\0guest", 12);
	assert_bytes(a->locale, "en_US", 5);
}

static void test_connection_tune_ok(void **state)
{
	(void)state;
	static const uint8_t want[] = {
		1, 0, 0, 0, 0, 0, 12, 0, 10, 0, 31, 0x07, 0xFF, 0, 2, 0, 0, 0, 60, 0xCE,
	};
	struct sv_method m = {.id = SV_CONNECTION_TUNE_OK,
			      .a.connection_tune_ok = {2047, 131072, 60}};
	struct sv_decoded_frame d;

	check_method_frame(&m, 0, want, sizeof want, &d);
	assert_int_equal(d.u.method.a.connection_tune_ok.channel_max, 2047);
	assert_int_equal(d.u.method.a.connection_tune_ok.frame_max, 131072);
	assert_int_equal(d.u.method.a.connection_tune_ok.heartbeat, 60);
}

/* Methods without a reply: basic.recover-async, and queue.bind with its no-wait bit (the
 * bit after the names, before the arguments table). */
static void test_no_reply_methods(void **state)
{
	(void)state;
	static const uint8_t recover_async[] = {
		1, 0, 1, 0, 0, 0, 5, 0, 60, 0, 100, 1, 0xCE, /* basic.recover-async, requeue */
	};
	static const uint8_t bind_nowait[] = {
		1, 0, 1, 0, 0, 0, 17,	/* method frame, channel 1, 17 bytes */
		0, 50, 0, 20, 0, 0,	/* queue.bind, ticket 0 */
		1, 'q', 1, 'x', 1, 'k', /* queue, exchange, routing key */
		1,			/* no-wait */
		0, 0, 0, 0,		/* arguments: empty table */
		0xCE,
	};
	struct sv_method m = {.id = SV_BASIC_RECOVER_ASYNC, .a.basic_recover_async = {true}};
	struct sv_decoded_frame d;

	check_method_frame(&m, 1, recover_async, sizeof recover_async, &d);
	assert_true(d.u.method.a.basic_recover_async.requeue);

	m = (struct sv_method){.id = SV_QUEUE_BIND};
	m.a.queue_bind.queue = B("q");
	m.a.queue_bind.exchange = B("x");
	m.a.queue_bind.routing_key = B("k");
	m.a.queue_bind.nowait = true;
	check_method_frame(&m, 1, bind_nowait, sizeof bind_nowait, &d);
	assert_true(d.u.method.a.queue_bind.nowait);
	assert_bytes(d.u.method.a.queue_bind.routing_key, "k", 1);
	assert_int_equal(d.u.method.a.queue_bind.arguments.len, 0);
}

/* RabbitMQ's extension (class 10, methods 70 and 71): new-secret a long string, reason a
 * short string; the reply has no arguments. */
static void test_connection_update_secret(void **state)
{
	(void)state;
	static const uint8_t want[] = {
		1, 0, 0, 0, 0, 0, 13,		/* method frame, channel 0, 13 bytes */
		0, 10, 0, 70,			/* connection.update-secret */
		0, 0, 0, 3, 't', 'o', 'k',	/* new-secret */
		1, 'r',				/* reason */
		0xCE,
	};
	static const uint8_t want_ok[] = {1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 71, 0xCE};
	struct sv_method m = {.id = SV_CONNECTION_UPDATE_SECRET};
	struct sv_decoded_frame d;

	m.a.connection_update_secret.new_secret = B("tok");
	m.a.connection_update_secret.reason = B("r");
	check_method_frame(&m, 0, want, sizeof want, &d);
	assert_bytes(d.u.method.a.connection_update_secret.new_secret, "tok", 3);
	assert_bytes(d.u.method.a.connection_update_secret.reason, "r", 1);
	m = (struct sv_method){.id = SV_CONNECTION_UPDATE_SECRET_OK};
	check_method_frame(&m, 0, want_ok, sizeof want_ok, &d);
	assert_string_equal(sv_method_name(SV_CONNECTION_UPDATE_SECRET), "connection.update-secret");
}

static const uint8_t publish_frame[] = {
	1, 0, 1, 0, 0, 0, 19,			  /* method frame, channel 1, 19 bytes */
	0, 60, 0, 40, 0, 0,			  /* basic.publish, ticket 0 */
	6, 'e', 'v', 'e', 'n', 't', 's',	  /* exchange */
	4, 'k', 'e', 'y', '1',			  /* routing key */
	1,					  /* mandatory, not immediate */
	0xCE,
};

static void test_basic_publish(void **state)
{
	(void)state;
	struct sv_method m = {.id = SV_BASIC_PUBLISH};
	struct sv_decoded_frame d;

	m.a.basic_publish.exchange = B("events");
	m.a.basic_publish.routing_key = B("key1");
	m.a.basic_publish.mandatory = true;
	check_method_frame(&m, 1, publish_frame, sizeof publish_frame, &d);
	assert_bytes(d.u.method.a.basic_publish.exchange, "events", 6);
	assert_bytes(d.u.method.a.basic_publish.routing_key, "key1", 4);
	assert_true(d.u.method.a.basic_publish.mandatory);
	assert_false(d.u.method.a.basic_publish.immediate);
}

static const uint8_t header_frame[] = {
	2, 0, 1, 0, 0, 0, 39,				/* content header, channel 1 */
	0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,		/* basic, weight 0, body size 5 */
	0xB0, 0x00,					/* content-type, headers, delivery-mode */
	10, 't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n',
	0, 0, 0, 9, 3, 'x', '-', 'n', 'I', 0xFF, 0xFF, 0xFF, 0xD6, /* {"x-n": -42} */
	2,						/* persistent */
	0xCE,
};

static void fill_props(struct sv_basic_props *p, uint8_t *tbuf, size_t cap)
{
	struct sv_table_writer w;
	struct sv_codec_error err;
	struct sv_field f = {.type = SV_FIELD_I32, .v.i32 = -42};

	sv_table_writer_init(&w, tbuf, cap);
	sv_tw_field(&w, "x-n", &f);
	assert_int_equal(sv_table_writer_finish(&w, &p->headers, &err), 0);
	p->flags = SV_PROP_CONTENT_TYPE | SV_PROP_HEADERS | SV_PROP_DELIVERY_MODE;
	p->content_type = B("text/plain");
	p->delivery_mode = 2;
}

static void test_content_header(void **state)
{
	(void)state;
	uint8_t buf[128], tbuf[32];
	struct sv_content_header h = {.class_id = SV_CLASS_BASIC, .body_size = 5};
	struct sv_codec_error err;
	struct sv_decoded_frame d;
	struct sv_field f;
	size_t n;

	fill_props(&h.props, tbuf, sizeof tbuf);
	n = sv_frame_put_header(buf, sizeof buf, 1, &h, &err);
	assert_int_equal(n, sizeof header_frame);
	assert_memory_equal(buf, header_frame, n);

	assert_int_equal(sv_frame_decode(header_frame, sizeof header_frame, SV_FRAME_MIN_SIZE, &d,
					 &err),
			 (ssize_t)sizeof header_frame);
	assert_int_equal(d.u.header.class_id, SV_CLASS_BASIC);
	assert_int_equal(d.u.header.body_size, 5);
	assert_int_equal(d.u.header.props.flags, 0xB000);
	assert_bytes(d.u.header.props.content_type, "text/plain", 10);
	assert_int_equal(d.u.header.props.delivery_mode, 2);
	assert_true(sv_table_find(d.u.header.props.headers, "x-n", &f));
	assert_int_equal(f.type, SV_FIELD_I32);
	assert_int_equal(f.v.i32, -42);
}

static void test_basic_ack(void **state)
{
	(void)state;
	static const uint8_t want[] = {
		1, 0, 3, 0, 0, 0, 13, 0, 60, 0, 80, 0, 0, 0, 1, 0, 0, 0, 2, 1, 0xCE,
	};
	struct sv_method m = {.id = SV_BASIC_ACK,
			      .a.basic_ack = {UINT64_C(0x100000002), true}};
	struct sv_decoded_frame d;

	check_method_frame(&m, 3, want, sizeof want, &d);
	/* 64-bit delivery tags are never truncated */
	assert_int_equal(d.u.method.a.basic_ack.delivery_tag, UINT64_C(0x100000002));
	assert_true(d.u.method.a.basic_ack.multiple);
}

static void test_heartbeat(void **state)
{
	(void)state;
	static const uint8_t want[] = {8, 0, 0, 0, 0, 0, 0, 0xCE};
	uint8_t buf[SV_HEARTBEAT_FRAME_SIZE];
	struct sv_decoded_frame d;
	struct sv_codec_error err;

	sv_frame_put_heartbeat(buf);
	assert_memory_equal(buf, want, sizeof want);
	assert_int_equal(sv_frame_decode(want, sizeof want, SV_FRAME_MIN_SIZE, &d, &err), 8);
	assert_int_equal(d.frame.type, SV_FRAME_HEARTBEAT);
}

/* The publish template produces exactly the golden method and header frames, then the body. */
static void test_publish_template(void **state)
{
	(void)state;
	uint8_t tpl_buf[256], tbuf[32], out[256];
	struct sv_basic_props props = {0};
	struct sv_publish_template t;
	struct sv_codec_error err;
	static const uint8_t body_frame[] = {3, 0, 1, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', 0xCE};

	fill_props(&props, tbuf, sizeof tbuf);
	assert_int_equal(sv_publish_template_init(&t, tpl_buf, sizeof tpl_buf, 1, B("events"),
						  B("key1"), true, &props, 131072, &err),
			 0);
	assert_int_equal(sv_publish_size(&t, 5),
			 sizeof publish_frame + sizeof header_frame + sizeof body_frame);
	sv_publish_write(&t, out, "hello", 5);
	assert_memory_equal(out, publish_frame, sizeof publish_frame);
	assert_memory_equal(out + sizeof publish_frame, header_frame, sizeof header_frame);
	assert_memory_equal(out + sizeof publish_frame + sizeof header_frame, body_frame,
			    sizeof body_frame);

	/* An empty body: the two frames alone, body size 0. */
	assert_int_equal(sv_publish_size(&t, 0), sizeof publish_frame + sizeof header_frame);
	sv_publish_write(&t, out, NULL, 0);
	assert_int_equal(sv_load64(out + sizeof publish_frame + 11), 0);
}

static void test_template_refusals(void **state)
{
	(void)state;
	uint8_t tpl_buf[8192], big[5000];
	struct sv_basic_props props = {.flags = SV_PROP_CORRELATION_ID};
	struct sv_publish_template t;
	struct sv_codec_error err;

	props.correlation_id = (struct sv_bytes){big, 256};
	assert_int_equal(sv_publish_template_init(&t, tpl_buf, sizeof tpl_buf, 1, B(""), B("k"),
						  false, &props, 131072, &err),
			 -1);
	assert_non_null(strstr(err.reason, "255"));

	/* A headers table that makes the content header larger than frame_max. */
	memset(big, 0, sizeof big);
	props = (struct sv_basic_props){.flags = SV_PROP_HEADERS, .headers = {big, 0}};
	{
		struct sv_table_writer w;
		sv_table_writer_init(&w, big, sizeof big);
		for (int i = 0; i < 300; i++) /* 14 bytes each */
			sv_tw_i64(&w, "0123", i);
		assert_int_equal(sv_table_writer_finish(&w, &props.headers, &err), 0);
	}
	assert_int_equal(sv_publish_template_init(&t, tpl_buf, sizeof tpl_buf, 1, B(""), B("k"),
						  false, &props, SV_FRAME_MIN_SIZE, &err),
			 -1);
	assert_non_null(strstr(err.reason, "frame_max"));
	assert_int_equal(sv_publish_template_init(&t, tpl_buf, sizeof tpl_buf, 1, B(""), B("k"),
						  false, &props, 131072, &err),
			 0);
	assert_int_equal(sv_publish_template_init(&t, tpl_buf, 100, 1, B(""), B("k"), false, &props,
						  131072, &err),
			 -1);
	assert_int_equal(sv_publish_template_init(&t, tpl_buf, sizeof tpl_buf, 1, B(""), B("k"),
						  false, &props, 4095, &err),
			 -1);
}

/* Every type of the sample table comes back from iteration with its value. */
static void test_table_iteration(void **state)
{
	(void)state;
	uint8_t buf[1024];
	struct sv_table t = sv_test_sample_table(buf, sizeof buf);
	struct sv_table_iter it;
	struct sv_array_iter ai;
	struct sv_codec_error err;
	struct sv_bytes key;
	struct sv_field f;
	const char *order = "tbBsuIilLfdDSxTVFA";
	size_t i = 0;

	assert_int_equal(sv_table_validate(t.ptr, t.len, &err), 0);
	sv_table_iter_init(&it, t);
	while (sv_table_next(&it, &key, &f, &err) == 1) {
		assert_int_equal(f.type, order[i]);
		i++;
	}
	assert_int_equal(i, strlen(order));

	assert_true(sv_table_find(t, "i16", &f) && f.v.i16 == -16000);
	assert_true(sv_table_find(t, "u64", &f) && f.v.u64 == UINT64_MAX - 7);
	assert_true(sv_table_find(t, "float", &f) && f.v.f == 1.5f);
	assert_true(sv_table_find(t, "double", &f) && f.v.d == -2.25);
	assert_true(sv_table_find(t, "decimal", &f) && f.v.decimal.scale == 2 &&
		    f.v.decimal.value == 12345);
	assert_true(sv_table_find(t, "i64", &f) && f.v.i64 == INT64_MIN + 7);
	assert_true(sv_table_find(t, "array", &f));
	sv_array_iter_init(&ai, f.v.array);
	assert_int_equal(sv_array_next(&ai, &f, &err), 1);
	assert_true(f.type == SV_FIELD_I64 && f.v.i64 == 1);
	assert_int_equal(sv_array_next(&ai, &f, &err), 1);
	assert_true(f.type == SV_FIELD_LONGSTR && f.v.str.len == 3);
	assert_int_equal(sv_array_next(&ai, &f, &err), 1);
	assert_true(f.type == SV_FIELD_ARRAY && f.v.array.len == 0);
	assert_int_equal(sv_array_next(&ai, &f, &err), 0);
}

static void test_reply_codes(void **state)
{
	(void)state;
	assert_string_equal(sv_reply_code_name(404), "NOT_FOUND");
	assert_int_equal(sv_reply_code_class(404), SV_REPLY_SOFT);
	assert_int_equal(sv_reply_code_class(406), SV_REPLY_SOFT);
	assert_int_equal(sv_reply_code_class(320), SV_REPLY_HARD);
	assert_int_equal(sv_reply_code_class(501), SV_REPLY_HARD);
	assert_int_equal(sv_reply_code_class(530), SV_REPLY_HARD);
	assert_int_equal(sv_reply_code_class(200), SV_REPLY_SUCCESS);
	assert_int_equal(sv_reply_code_class(999), SV_REPLY_UNKNOWN);
	assert_null(sv_reply_code_name(999));
	assert_string_equal(sv_method_name(SV_BASIC_PUBLISH), "basic.publish");
	assert_string_equal(sv_method_name(SV_CONFIRM_SELECT_OK), "confirm.select-ok");
	assert_null(sv_method_name(0x000A00FF));
	assert_string_equal(sv_reply_code_label(404), "404 NOT_FOUND");
	assert_null(sv_reply_code_label(999));
	assert_string_equal(salvo_err2str(404), "404 NOT_FOUND");
	assert_string_equal(salvo_err2str(320), "320 CONNECTION_FORCED");
	assert_string_equal(salvo_err2str(999), "unknown status");
	assert_string_equal(salvo_err2str(SALVO_ERR_TIMEOUT), "timed out");
	assert_string_equal(salvo_err2str(-1000), "unknown status");
}

/* salvo_error_format: the reply code always, the broker's text once, the method after. */
static void test_error_format(void **state)
{
	char buf[512];
	salvo_error e = {.status = 404, .kind = SALVO_ERROR_CHANNEL, .reply_code = 404,
			 .class_id = 60, .method_id = 40,
			 .text = "NOT_FOUND - no exchange 'x' in vhost '/'", .method = "basic.publish"};

	(void)state;
	assert_string_equal(salvo_error_format(&e, buf, sizeof buf),
			    "404 NOT_FOUND - no exchange 'x' in vhost '/' (basic.publish)");
	/* A text that does not begin with the name gets it; no method, no suffix. */
	e = (salvo_error){.status = 320, .kind = SALVO_ERROR_CONNECTION, .reply_code = 320,
			  .text = "shutdown"};
	assert_string_equal(salvo_error_format(&e, buf, sizeof buf),
			    "320 CONNECTION_FORCED - shutdown");
	/* A code the spec does not name, with and without a text. */
	e = (salvo_error){.status = 599, .reply_code = 599, .text = "odd"};
	assert_string_equal(salvo_error_format(&e, buf, sizeof buf), "599 odd");
	e.text[0] = '\0';
	assert_string_equal(salvo_error_format(&e, buf, sizeof buf), "599");
	/* A local status with the broker's reply behind it. */
	e = (salvo_error){.status = SALVO_ERR_RETURNED, .reply_code = 312, .text = "NO_ROUTE",
			  .method = "basic.return"};
	assert_string_equal(salvo_error_format(&e, buf, sizeof buf),
			    "returned by the broker: 312 NO_ROUTE (basic.return)");
	e = (salvo_error){.status = SALVO_ERR_TIMEOUT, .kind = SALVO_ERROR_LOCAL,
			  .text = "no confirm within 5000 ms"};
	assert_string_equal(salvo_error_format(&e, buf, sizeof buf),
			    "timed out: no confirm within 5000 ms");
	e.text[0] = '\0';
	assert_string_equal(salvo_error_format(&e, buf, sizeof buf), "timed out");
	/* A status with no error behind it. */
	assert_string_equal(salvo_error_format(NULL, buf, sizeof buf), "success");
	e = (salvo_error){0};
	assert_string_equal(salvo_error_format(&e, buf, sizeof buf), "success");
	/* Cut to the buffer, always terminated; nothing written into a zero-length one. */
	e = (salvo_error){.status = 404, .reply_code = 404, .text = "NOT_FOUND - no queue 'q'"};
	assert_string_equal(salvo_error_format(&e, buf, 8), "404 NOT");
	buf[0] = 'z';
	assert_ptr_equal(salvo_error_format(&e, buf, 0), buf);
	assert_int_equal(buf[0], 'z');
	/* The longest error fits in 512 bytes whole. */
	memset(e.text, 'a', sizeof e.text - 1);
	e.text[sizeof e.text - 1] = '\0';
	memset(e.method, 'm', sizeof e.method - 1);
	e.method[sizeof e.method - 1] = '\0';
	e.status = SALVO_ERR_RETURNED;
	e.reply_code = 312;
	salvo_error_format(&e, buf, sizeof buf);
	assert_int_equal(buf[strlen(buf) - 1], ')');
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connection_start_ok),
		cmocka_unit_test(test_connection_tune_ok),
		cmocka_unit_test(test_no_reply_methods),
		cmocka_unit_test(test_connection_update_secret),
		cmocka_unit_test(test_basic_publish),
		cmocka_unit_test(test_content_header),
		cmocka_unit_test(test_basic_ack),
		cmocka_unit_test(test_heartbeat),
		cmocka_unit_test(test_publish_template),
		cmocka_unit_test(test_template_refusals),
		cmocka_unit_test(test_table_iteration),
		cmocka_unit_test(test_reply_codes),
		cmocka_unit_test(test_error_format),
	};
	return sv_test_main(argc, argv, "golden", tests, sizeof tests / sizeof tests[0]);
}
