/* SPDX-License-Identifier: MIT */
/*
 * Credentials that change, without a broker: the configuration's credentials callback
 * (set, cleared, copied by salvo_conf_dup), salvo_credentials_set's limits and refusals,
 * and what one question before a connection attempt (sv_creds_refresh) makes of the
 * callback's answers: taken whole, or refused whole with the reason, the current
 * credentials untouched; and salvo_client_new failing with the callback's failure before
 * it connects anywhere. Run with a test's name to run it alone.
 */
#include <stdlib.h>

#include "../support.h"

#include "conf_internal.h"
#include "creds.h"

/* What the callback of a test does: the user and password it sets (user NULL: keeps),
 * whether it sets anything, what it returns and the text it puts in err. */
struct answer {
	const char *user, *password;
	bool set;
	int set_rc; /* what salvo_credentials_set returned */
	int rc;
	const char *why;
	unsigned calls;
};

static int callback(void *arg, salvo_credentials *cred, salvo_error *err)
{
	struct answer *a = arg;

	a->calls++;
	if (a->set)
		a->set_rc = salvo_credentials_set(cred, a->user, a->password);
	if (a->why)
		snprintf(err->text, sizeof err->text, "%s", a->why);
	return a->rc;
}

static salvo_conf *conf_with(struct answer *a)
{
	salvo_conf *conf = salvo_conf_new();

	assert_non_null(conf);
	assert_int_equal(salvo_conf_set(conf, "uri", "amqp://alice:first@h", NULL, 0), 0);
	assert_int_equal(salvo_conf_set_credentials_cb(conf, a ? callback : NULL, a), 0);
	return conf;
}

static void test_conf_callback(void **state)
{
	(void)state;
	struct answer a = {0};
	salvo_conf *conf = conf_with(&a), *copy;

	assert_int_equal(salvo_conf_set_credentials_cb(NULL, callback, &a),
			 SALVO_ERR_INVALID_ARGUMENT);
	assert_ptr_equal(conf->creds_fn, callback);
	assert_ptr_equal(conf->creds_arg, &a);
	copy = salvo_conf_dup(conf);
	assert_non_null(copy);
	assert_ptr_equal(copy->creds_fn, callback);
	assert_ptr_equal(copy->creds_arg, &a);
	/* Cleared: no argument kept for a callback that is gone. */
	assert_int_equal(salvo_conf_set_credentials_cb(conf, NULL, &a), 0);
	assert_null(conf->creds_fn);
	assert_null(conf->creds_arg);
	salvo_conf_destroy(copy);
	salvo_conf_destroy(conf);
}

/* No callback: the configuration's credentials, unchanged. */
static void test_no_callback(void **state)
{
	(void)state;
	salvo_conf *conf = conf_with(NULL);
	struct salvo_credentials cr;
	salvo_error err;

	sv_creds_init(&cr, conf);
	assert_int_equal(sv_creds_refresh(conf, &cr, &err), 0);
	assert_string_equal(cr.user, "alice");
	assert_string_equal(cr.password, "first");
	sv_creds_wipe(&cr);
	salvo_conf_destroy(conf);
}

static void test_answer_taken(void **state)
{
	(void)state;
	struct answer a = {.user = "bob", .password = "token-1", .set = true};
	salvo_conf *conf = conf_with(&a);
	struct salvo_credentials cr;
	salvo_error err;

	sv_creds_init(&cr, conf);
	assert_int_equal(sv_creds_refresh(conf, &cr, &err), 0);
	assert_int_equal(a.set_rc, 0);
	assert_string_equal(cr.user, "bob");
	assert_string_equal(cr.password, "token-1");
	/* user NULL keeps the user; a shorter password leaves nothing of the longer one */
	a.user = NULL;
	a.password = "t2";
	assert_int_equal(sv_creds_refresh(conf, &cr, &err), 0);
	assert_string_equal(cr.user, "bob");
	assert_string_equal(cr.password, "t2");
	assert_int_equal(cr.password[3], 0);
	assert_int_equal(cr.password[6], 0);
	/* 0 without a set: the credentials of the attempt before */
	a.set = false;
	assert_int_equal(sv_creds_refresh(conf, &cr, &err), 0);
	assert_string_equal(cr.user, "bob");
	assert_string_equal(cr.password, "t2");
	assert_int_equal(a.calls, 3);
	sv_creds_wipe(&cr);
	salvo_conf_destroy(conf);
}

static void test_callback_fails(void **state)
{
	(void)state;
	struct answer a = {.password = "never-used", .set = true, .rc = SALVO_ERR_TIMEOUT,
			   .why = "token service did not answer"};
	salvo_conf *conf = conf_with(&a);
	struct salvo_credentials cr;
	salvo_error err;

	sv_creds_init(&cr, conf);
	assert_int_equal(sv_creds_refresh(conf, &cr, &err), SALVO_ERR_TIMEOUT);
	assert_int_equal(err.status, SALVO_ERR_TIMEOUT);
	assert_int_equal(err.kind, SALVO_ERROR_LOCAL);
	assert_string_equal(err.text, "credentials callback failed: token service did not answer");
	/* nothing of a failed answer is taken */
	assert_string_equal(cr.password, "first");
	/* a positive return is no salvo_status: SALVO_ERR_IO; no text: said so */
	a.rc = 1;
	a.why = NULL;
	assert_int_equal(sv_creds_refresh(conf, &cr, &err), SALVO_ERR_IO);
	assert_string_equal(err.text, "credentials callback failed: (no reason given)");
	/* a text holding the password it set is masked */
	a.rc = -1;
	a.why = "refused never-used";
	assert_int_equal(sv_creds_refresh(conf, &cr, &err), -1);
	assert_null(strstr(err.text, "never-used"));
	assert_non_null(strstr(err.text, "refused **********"));
	sv_creds_wipe(&cr);
	salvo_conf_destroy(conf);
}

static void test_too_long(void **state)
{
	(void)state;
	static char big[SV_PASSWORD_MAX + 2];
	char user[SV_NAME_MAX + 2];
	struct answer a = {.set = true};
	salvo_conf *conf = conf_with(&a);
	struct salvo_credentials cr;
	salvo_error err;

	memset(big, 'p', sizeof big - 1);
	memset(user, 'u', sizeof user - 1);
	user[sizeof user - 1] = '\0';
	sv_creds_init(&cr, conf);
	/* the longest of each is taken */
	big[SV_PASSWORD_MAX] = '\0';
	user[SV_NAME_MAX] = '\0';
	a.user = user;
	a.password = big;
	assert_int_equal(sv_creds_refresh(conf, &cr, &err), 0);
	assert_int_equal(strlen(cr.password), SV_PASSWORD_MAX);
	assert_int_equal(strlen(cr.user), SV_NAME_MAX);
	sv_creds_init(&cr, conf);
	/* one byte more: refused, whatever the callback returns */
	big[SV_PASSWORD_MAX] = 'p';
	assert_int_equal(sv_creds_refresh(conf, &cr, &err), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(a.set_rc, SALVO_ERR_INVALID_ARGUMENT);
	assert_string_equal(err.text, "credentials callback failed: salvo_credentials_set: the "
				      "password is longer than 4096 bytes");
	assert_string_equal(cr.password, "first");
	big[SV_PASSWORD_MAX] = '\0';
	user[SV_NAME_MAX] = 'u';
	assert_int_equal(sv_creds_refresh(conf, &cr, &err), SALVO_ERR_INVALID_ARGUMENT);
	assert_string_equal(err.text, "credentials callback failed: salvo_credentials_set: the "
				      "user is longer than 255 bytes");
	assert_string_equal(cr.user, "alice");
	a.user = "bob";
	a.password = NULL;
	assert_int_equal(sv_creds_refresh(conf, &cr, &err), SALVO_ERR_INVALID_ARGUMENT);
	assert_string_equal(err.text, "credentials callback failed: salvo_credentials_set: the "
				      "password is NULL");
	assert_string_equal(cr.user, "alice");
	assert_int_equal(salvo_credentials_set(NULL, "u", "p"), SALVO_ERR_INVALID_ARGUMENT);
	sv_creds_wipe(&cr);
	salvo_conf_destroy(conf);
}

/* A refused set stays refused: a good one after it in the same callback does not undo it. */
static int set_twice(void *arg, salvo_credentials *cred, salvo_error *err)
{
	(void)arg;
	(void)err;
	assert_int_equal(salvo_credentials_set(cred, "u", NULL), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_credentials_set(cred, "u", "good"), 0);
	return 0;
}

static void test_refusal_sticks(void **state)
{
	(void)state;
	salvo_conf *conf = conf_with(NULL);
	struct salvo_credentials cr;
	salvo_error err;

	assert_int_equal(salvo_conf_set_credentials_cb(conf, set_twice, NULL), 0);
	sv_creds_init(&cr, conf);
	assert_int_equal(sv_creds_refresh(conf, &cr, &err), SALVO_ERR_INVALID_ARGUMENT);
	assert_string_equal(cr.user, "alice");
	assert_string_equal(cr.password, "first");
	sv_creds_wipe(&cr);
	salvo_conf_destroy(conf);
}

/* The first connection asks the callback before anything else: its failure (or a refused
 * set) is salvo_client_new's, not the refused connection to port 1 it never tried. */
static void test_client_new_fails(void **state)
{
	(void)state;
	static char big[SV_PASSWORD_MAX + 2];
	struct answer a = {.rc = SALVO_ERR_TIMEOUT, .why = "no token yet"};
	salvo_conf *conf = conf_with(&a);
	salvo_client *c = (salvo_client *)&a;
	salvo_error err;

	assert_int_equal(salvo_conf_set(conf, "uri", "amqp://alice:first@127.0.0.1:1", NULL, 0),
			 0);
	assert_int_equal(salvo_client_new(conf, &c, &err), SALVO_ERR_TIMEOUT);
	assert_null(c);
	assert_int_equal(a.calls, 1);
	assert_int_equal(err.kind, SALVO_ERROR_LOCAL);
	assert_string_equal(err.text, "credentials callback failed: no token yet");
	memset(big, 'p', sizeof big - 1);
	a = (struct answer){.password = big, .set = true};
	assert_int_equal(salvo_client_new(conf, &c, &err), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(a.calls, 1);
	assert_non_null(strstr(err.text, "password is longer than 4096 bytes"));
	/* A good answer: now it connects, to a port where nothing listens. */
	a = (struct answer){.password = "token", .set = true};
	assert_int_equal(salvo_client_new(conf, &c, &err), SALVO_ERR_IO);
	assert_int_equal(a.calls, 1);
	salvo_conf_destroy(conf);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		NAMED_TEST("conf callback", test_conf_callback),
		NAMED_TEST("no callback", test_no_callback),
		NAMED_TEST("answer taken", test_answer_taken),
		NAMED_TEST("callback fails", test_callback_fails),
		NAMED_TEST("too long", test_too_long),
		NAMED_TEST("refusal sticks", test_refusal_sticks),
		NAMED_TEST("client new fails", test_client_new_fails),
	};

	return sv_test_main(argc, argv, "creds", tests, sizeof tests / sizeof tests[0]);
}
