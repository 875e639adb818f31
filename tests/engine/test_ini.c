/* SPDX-License-Identifier: MIT */
/*
 * Configuration files: the INI tokenizer (items, every syntax error with its line, sticky
 * errors, line limits, every prefix of the inputs against a guard page, random garbage)
 * and the loader that applies a section to a salvo_conf (uri order and failover,
 * pool_size, unknown keys, bad values, duplicates, missing sections, limits, files).
 * Run with a test's name to run that test alone.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../support.h"

#include "conf_internal.h"
#include "ini.h"

/* Every item of text as one string per item: "S name", "K key=value", "E line:why". */
static void items(const char *text, char out[][128], size_t max, size_t *n)
{
	struct sv_ini ini;
	struct sv_ini_item it;

	*n = 0;
	sv_ini_init(&ini, text, strlen(text), 0);
	while (*n < max) {
		enum sv_ini_kind k = sv_ini_next(&ini, &it);
		if (k == SV_INI_END)
			break;
		if (k == SV_INI_SECTION)
			snprintf(out[*n], 128, "S %u %.*s", it.line, (int)it.name_len, it.name);
		else if (k == SV_INI_KEY)
			snprintf(out[*n], 128, "K %u %.*s=%.*s", it.line, (int)it.name_len, it.name,
				 (int)it.value_len, it.value);
		else
			snprintf(out[*n], 128, "E %u %s", it.line, it.error);
		(*n)++;
		if (k == SV_INI_ERROR)
			break;
	}
}

static void test_items(void **state)
{
	const char *text = "\xEF\xBB\xBF# comment\n"
			   "; another\n"
			   "\n"
			   "  [ publish ]  \r\n"
			   "uri = amqp://u:p#;\"@h:1/v  \n"
			   "\tpool_size=4\n"
			   "empty =\n"
			   "[listen.2-x]\n"
			   "key.with-dash_1 = a = b\tc";
	char got[16][128];
	size_t n;

	(void)state;
	items(text, got, 16, &n);
	assert_int_equal(n, 6);
	assert_string_equal(got[0], "S 4 publish");
	assert_string_equal(got[1], "K 5 uri=amqp://u:p#;\"@h:1/v");
	assert_string_equal(got[2], "K 6 pool_size=4");
	assert_string_equal(got[3], "K 7 empty=");
	assert_string_equal(got[4], "S 8 listen.2-x");
	assert_string_equal(got[5], "K 9 key.with-dash_1=a = b\tc");
}

static const struct {
	const char *text;
	const char *want; /* "E line why-prefix" */
} syntax_cases[] = {
    {"[open\n", "E 1 expected ']'"},
    {"[]\n", "E 1 expected a section name"},
    {"[a b]\n", "E 1 expected ']'"},
    {"[ok] trailing\n", "E 1 unexpected text after ']'"},
    {"[ok]\nno equals here\n", "E 2 expected '=' after the key"},
    {"[ok]\n= value\n", "E 2 expected a key"},
    {"[ok]\nk\xC3\xA9y = v\n", "E 2 expected '=' after the key"},
    {"[ok]\n\xC3\xA9 = v\n", "E 2 expected a key"},
    {"[ok]\nkey = a\rb\n", "E 2 control character in the value"},
    {"[ok]\nkey = a\x01\n", "E 2 control character in the value"},
    {"[ok]\n\n\nkey\n", "E 4 expected '=' after the key"},
    {"[0123456789012345678901234567890123456789012345678901234567890123456789]\n",
     "E 1 section name longer than 64 bytes"},
    {"[s]\n0123456789012345678901234567890123456789012345678901234567890123456789=1\n",
     "E 2 key longer than 64 bytes"},
};

static void test_syntax_errors(void **state)
{
	char got[16][128];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof syntax_cases / sizeof syntax_cases[0]; i++) {
		items(syntax_cases[i].text, got, 16, &n);
		assert_true(n >= 1);
		if (strncmp(got[n - 1], syntax_cases[i].want, strlen(syntax_cases[i].want)))
			fail_msg("case %zu: got '%s', want '%s'", i, got[n - 1],
				 syntax_cases[i].want);
	}
}

static void test_nul_byte(void **state)
{
	static const char text[] = "[a]\nkey = x\0y\n";
	struct sv_ini ini;
	struct sv_ini_item it;

	(void)state;
	sv_ini_init(&ini, text, sizeof text - 1, 0);
	assert_int_equal(sv_ini_next(&ini, &it), SV_INI_SECTION);
	assert_int_equal(sv_ini_next(&ini, &it), SV_INI_ERROR);
	assert_int_equal(it.line, 2);
	assert_string_equal(it.error, "NUL byte in the line");
}

static void test_sticky_errors(void **state)
{
	const char *text = "[a]\nbad line\n[b]\nk = v\n";
	struct sv_ini ini;
	struct sv_ini_item it;

	(void)state;
	sv_ini_init(&ini, text, strlen(text), 0);
	assert_int_equal(sv_ini_next(&ini, &it), SV_INI_SECTION);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sv_ini_next(&ini, &it), SV_INI_ERROR);
		assert_int_equal(it.line, 2);
	}
}

static void test_line_length(void **state)
{
	size_t max = SV_INI_LINE_MAX;
	char *text = malloc(max + 16);
	struct sv_ini ini;
	struct sv_ini_item it;

	(void)state;
	assert_non_null(text);
	if (!text) /* for gcc's bounds warning under -fsanitize: cmocka's assert may return */
		return;
	/* "[s]\n" then "k=" and a value filling the line to exactly the limit. */
	memcpy(text, "[s]\nk=", 6);
	memset(text + 6, 'v', max - 2);
	memcpy(text + 4 + max, "\r\n", 3);
	sv_ini_init(&ini, text, strlen(text), 0);
	assert_int_equal(sv_ini_next(&ini, &it), SV_INI_SECTION);
	assert_int_equal(sv_ini_next(&ini, &it), SV_INI_KEY);
	assert_int_equal(it.value_len, max - 2);
	assert_int_equal(sv_ini_next(&ini, &it), SV_INI_END);
	/* One more byte is one too many. */
	memset(text + 6, 'v', max - 1);
	memcpy(text + 5 + max, "\n", 2);
	sv_ini_init(&ini, text, strlen(text), 0);
	assert_int_equal(sv_ini_next(&ini, &it), SV_INI_SECTION);
	assert_int_equal(sv_ini_next(&ini, &it), SV_INI_ERROR);
	assert_int_equal(it.line, 2);
	assert_string_equal(it.error, "line longer than 8192 bytes");
	free(text);
}

static const char *const samples[] = {
    "[publish]\nuri = amqp://guest:guest@localhost:5672/\npool_size = 2\n",
    "\xEF\xBB\xBF[a]\r\nk=v\r\n;c\r\n[b]\r\n",
    "[a]\nkey = v\n[",
    "[a]\nkey",
    "  [ x ]  \n  k  =  v  ",
    "[s]\nheartbeat = 30\nuri = amqp://h\nuri = amqp://h2\n",
};

/* Parse every prefix of each sample placed right before an unmapped page: a read past
 * the end faults. The loader runs on each prefix too. */
static void test_prefixes_guard_page(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	char *map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	salvo_conf *conf = salvo_conf_new();

	(void)state;
	assert_true(map != MAP_FAILED);
	assert_non_null(conf);
	assert_int_equal(mprotect(map + page, (size_t)page, PROT_NONE), 0);
	for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
		size_t len = strlen(samples[s]);
		for (size_t cut = 0; cut <= len; cut++) {
			char *p = map + page - cut;
			struct sv_ini ini;
			struct sv_ini_item it;
			size_t size;
			int guard = 0;

			memcpy(p, samples[s], cut);
			sv_ini_init(&ini, p, cut, 0);
			while (sv_ini_next(&ini, &it) > 0 && ++guard < 100)
				;
			sv_conf_load_text(conf, p, cut, "prefix.cfg", "a", &size, NULL);
		}
	}
	salvo_conf_destroy(conf);
	munmap(map, (size_t)page * 2);
}

/* Random bytes, and random lines of INI-ish tokens: no crash, a definite answer. */
static void test_random_garbage(void **state)
{
	static const char *const tokens[] = {"[",	  "]",	"a",	     "uri",  "=",
					     " ",	  "\n", "\r\n",	     "#",    ";",
					     "pool_size", "9",	"heartbeat", ".",    "\t",
					     "amqp://h",  "\0", "\x01",	     "\xff", "[publish]\n"};
	salvo_conf *conf = salvo_conf_new();
	char buf[512];
	unsigned seed = 12345;

	(void)state;
	assert_non_null(conf);
	for (int round = 0; round < 20000; round++) {
		size_t len = 0, n = (size_t)rand_r(&seed) % 64;
		struct sv_ini ini;
		struct sv_ini_item it;
		salvo_error err;
		size_t size;

		for (size_t i = 0; i < n; i++) {
			if (round % 2) {
				buf[len++] = (char)rand_r(&seed);
			} else {
				const char *t = tokens[(size_t)rand_r(&seed) % 20];
				size_t tl = t[0] ? strlen(t) : 1;
				if (len + tl > sizeof buf)
					break;
				memcpy(buf + len, t, tl);
				len += tl;
			}
		}
		sv_ini_init(&ini, buf, len, 0);
		for (int guard = 0; sv_ini_next(&ini, &it) > 0; guard++)
			assert_true(guard < 600);
		int rc = sv_conf_load_text(conf, buf, len, "g.cfg", "publish", &size, &err);
		assert_true(rc == 0 || rc == SALVO_ERR_INVALID_ARGUMENT);
		if (rc)
			assert_true(strncmp(err.text, "g.cfg:", 6) == 0);
	}
	salvo_conf_destroy(conf);
}

/* The loader. */

static int load(salvo_conf *conf, const char *text, const char *section, size_t *size,
		salvo_error *err)
{
	return sv_conf_load_text(conf, text, strlen(text), "app.cfg", section, size, err);
}

static void conf_is(salvo_conf *conf, const char *key, const char *want)
{
	char buf[512];
	size_t size = sizeof buf;

	assert_int_equal(salvo_conf_get(conf, key, buf, &size), 0);
	assert_string_equal(buf, want);
}

/* Loading fails with text "app.cfg:<line>: <why>"; the conf stays as it was. */
static void expect_error(const char *text, const char *section, const char *want)
{
	salvo_conf *conf = salvo_conf_new();
	salvo_error err;
	size_t size = 99;

	assert_non_null(conf);
	assert_int_equal(load(conf, text, section, &size, &err), SALVO_ERR_INVALID_ARGUMENT);
	if (strncmp(err.text, want, strlen(want)))
		fail_msg("got '%s', want '%s'", err.text, want);
	assert_int_equal(size, 99);
	conf_is(conf, "uri", "amqp://guest:***@localhost:5672/%2F");
	conf_is(conf, "heartbeat", "60");
	salvo_conf_destroy(conf);
}

static const char app_cfg[] = "# nucleon's app.cfg, two pools\n"
			      "[publish]\n"
			      "uri = amqp://pub:secret@broker:5673/prod\n"
			      "pool_size = 4\n"
			      "heartbeat = 30\n"
			      "\n"
			      "[listen]\n"
			      "uri = amqp://lis:secret@broker:5673/prod\n"
			      "pool_size = 2\n"
			      "consumer.buffer_bytes = 1048576\n";

static void test_load_sections(void **state)
{
	salvo_conf *conf = salvo_conf_new();
	salvo_error err;
	size_t size = 0;

	(void)state;
	assert_non_null(conf);
	assert_int_equal(load(conf, app_cfg, "publish", &size, &err), 0);
	assert_int_equal(size, 4);
	conf_is(conf, "uri", "amqp://pub:***@broker:5673/prod");
	conf_is(conf, "heartbeat", "30");
	conf_is(conf, "consumer.buffer_bytes", "16777216");
	assert_int_equal(load(conf, app_cfg, "listen", &size, &err), 0);
	assert_int_equal(size, 2);
	conf_is(conf, "uri", "amqp://lis:***@broker:5673/prod");
	/* The publish section's heartbeat stayed from the load before: a load only adds. */
	conf_is(conf, "heartbeat", "30");
	conf_is(conf, "consumer.buffer_bytes", "1048576");
	salvo_conf_destroy(conf);
}

static void test_defaults_and_null_size(void **state)
{
	salvo_conf *conf = salvo_conf_new();
	size_t size = 0;

	(void)state;
	assert_non_null(conf);
	assert_int_equal(load(conf, "[empty]\n", "empty", &size, NULL), 0);
	assert_int_equal(size, 1);
	assert_int_equal(load(conf, "[empty]\n", "empty", NULL, NULL), 0);
	conf_is(conf, "uri", "amqp://guest:***@localhost:5672/%2F");
	salvo_conf_destroy(conf);
}

static void test_uri_order_and_failover(void **state)
{
	salvo_conf *conf = salvo_conf_new();
	salvo_error err;

	(void)state;
	assert_non_null(conf);
	/* user before uri still wins; later uri lines and uri.add are failovers, in order. */
	assert_int_equal(load(conf,
			      "[p]\n"
			      "user = alice\n"
			      "uri = amqp://bob:pw@one:1001/v\n"
			      "uri.add = amqp://two:1002\n"
			      "uri = amqp://three:1003\n",
			      "p", NULL, &err),
			 0);
	conf_is(conf, "user", "alice");
	conf_is(conf, "vhost", "v");
	conf_is(conf, "uri", "amqp://alice:***@one:1001/v");
	conf_is(conf, "uri.add", "amqp://two:1002,amqp://three:1003");
	/* A repeated uri may name the first one's user, password and vhost, or leave them
	 * out; it adds only its endpoint (scheme, host, port; IPv6 kept in brackets). */
	assert_int_equal(load(conf,
			      "[p]\n"
			      "uri = amqps://bob:pw@one:1001/v?heartbeat=5\n"
			      "uri = amqps://bob:pw@two:1002/v\n"
			      "uri = amqps://[::1]\n",
			      "p", NULL, &err),
			 0);
	conf_is(conf, "uri", "amqps://bob:***@one:1001/v");
	conf_is(conf, "uri.add", "amqps://two:1002,amqps://[::1]:5671");
	conf_is(conf, "heartbeat", "5");
	salvo_conf_destroy(conf);
}

static void test_uri_repeated_refusals(void **state)
{
	(void)state;
	expect_error("[p]\nuri = amqp://u:p@h/v\nuri = amqp://u:other@h2/v\n", "p",
		     "app.cfg:3: uri: a repeated uri is a failover endpoint: its password "
		     "differs from the first URI's");
	expect_error("[p]\nuri = amqp://u:p@h/v\nuri = amqp://w:p@h2/v\n", "p",
		     "app.cfg:3: uri: a repeated uri is a failover endpoint: its user differs");
	expect_error("[p]\nuri = amqp://u:p@h/v\nuri = amqp://u:p@h2/w\n", "p",
		     "app.cfg:3: uri: a repeated uri is a failover endpoint: its vhost");
	expect_error("[p]\nuri = amqp://h\nuri = amqp://h2?heartbeat=1\n", "p",
		     "app.cfg:3: uri: a repeated uri is a failover endpoint: query parameters");
	expect_error("[p]\nuri = amqp://h\nuri = nonsense\n", "p", "app.cfg:3: uri: ");
}

static void test_unknown_key(void **state)
{
	(void)state;
	expect_error("[publish]\nuri = amqp://h\nhartbeat = 30\n", "publish",
		     "app.cfg:3: unknown configuration key \"hartbeat\"");
}

static void test_bad_values(void **state)
{
	(void)state;
	expect_error("[p]\nheartbeat = soon\n", "p",
		     "app.cfg:2: heartbeat: \"soon\" is not a number");
	expect_error("[p]\nheartbeat = 99999999\n", "p", "app.cfg:2: heartbeat: ");
	expect_error("[p]\nuri = http://h\n", "p", "app.cfg:2: uri: ");
	expect_error("[p]\nuri = amqp://h\nuri = amqp://h:0\n", "p", "app.cfg:3: uri: port: ");
	expect_error("[p]\npool_size = 0\n", "p",
		     "app.cfg:2: pool_size: expected a number from 1 to 64");
	expect_error("[p]\npool_size = 65\n", "p", "app.cfg:2: pool_size: ");
	expect_error("[p]\npool_size = -1\n", "p", "app.cfg:2: pool_size: ");
	expect_error("[p]\npool_size =\n", "p", "app.cfg:2: pool_size: ");
}

static void test_other_section_checked(void **state)
{
	(void)state;
	expect_error("[publish]\npool_size = 2\n[listen]\npool_sise = 2\n", "publish",
		     "app.cfg:4: unknown configuration key \"pool_sise\"");
}

static void test_duplicates(void **state)
{
	(void)state;
	expect_error("[a]\nk = 1\n[b]\n[a]\n", "b",
		     "app.cfg:4: section [a] already defined at line 1");
	expect_error("[a]\nheartbeat = 1\nheartbeat = 2\n", "a",
		     "app.cfg:3: 'heartbeat' already set at line 2");
	expect_error("[a]\npool_size = 1\n\npool_size = 2\n", "a",
		     "app.cfg:4: 'pool_size' already set at line 2");
}

static void test_structure_errors(void **state)
{
	(void)state;
	expect_error("uri = amqp://h\n[p]\n", "p",
		     "app.cfg:1: 'uri' is outside any section: a [name] line must come first");
	expect_error("[publish]\n[listen]\n", "listne",
		     "app.cfg: no section [listne] (found: publish, listen)");
	expect_error("# nothing\n", "p", "app.cfg: no section [p] (found: none)");
	expect_error("[p]\nbroken\n", "p", "app.cfg:2: expected '=' after the key");
}

static void test_limits(void **state)
{
	char text[4096];
	size_t len = 0;

	(void)state;
	for (int i = 0; i < 65; i++)
		len += (size_t)snprintf(text + len, sizeof text - len, "[s%d]\n", i);
	expect_error(text, "s0", "app.cfg:65: more than 64 sections");
	len = (size_t)snprintf(text, sizeof text, "[p]\n");
	for (int i = 0; i < 65; i++)
		len += (size_t)snprintf(text + len, sizeof text - len, "uri.add = amqp://h%d\n", i);
	expect_error(text, "p", "app.cfg:66: more than 64 keys in section [p]");
	/* 64 keys are fine as keys; here the 16-endpoint limit of uri.add speaks first. */
	len = (size_t)snprintf(text, sizeof text, "[p]\n");
	for (int i = 0; i < 16; i++)
		len += (size_t)snprintf(text + len, sizeof text - len, "uri.add = amqp://h%d\n", i);
	expect_error(text, "p", "app.cfg:17: uri.add: ");
}

static void test_password_never_in_messages(void **state)
{
	salvo_conf *conf = salvo_conf_new();
	salvo_error err;

	(void)state;
	assert_non_null(conf);
	assert_int_equal(load(conf, "[p]\nuri = amqp://u:hunter2@h:99999\n", "p", NULL, &err),
			 SALVO_ERR_INVALID_ARGUMENT);
	assert_null(strstr(err.text, "hunter2"));
	assert_int_equal(load(conf, "[p]\npassword = hunter2\nheartbeat = x\n", "p", NULL, &err),
			 SALVO_ERR_INVALID_ARGUMENT);
	assert_null(strstr(err.text, "hunter2"));
	salvo_conf_destroy(conf);
}

static int no_hook(salvo_client *c, void *arg, salvo_error *err)
{
	(void)c;
	(void)arg;
	(void)err;
	return 0;
}

static void test_hooks_kept(void **state)
{
	salvo_conf *conf = salvo_conf_new();

	(void)state;
	assert_non_null(conf);
	assert_int_equal(salvo_conf_add_on_connect(conf, no_hook, NULL), 0);
	assert_int_equal(load(conf, app_cfg, "listen", NULL, NULL), 0);
	assert_int_equal(conf->n_hooks, 1);
	salvo_conf_destroy(conf);
}

/* salvo_conf_load_file: a file, a missing one, a directory, one over 256 KiB. */
static void test_files(void **state)
{
	char dir[] = "/tmp/salvo-ini-XXXXXX", path[64];
	salvo_conf *conf = salvo_conf_new();
	salvo_error err;
	size_t size = 0;
	FILE *f;

	(void)state;
	assert_non_null(conf);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/app.cfg", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(app_cfg, f);
	fclose(f);
	assert_int_equal(salvo_conf_load_file(conf, path, "publish", &size, &err), 0);
	assert_int_equal(size, 4);
	conf_is(conf, "heartbeat", "30");

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("[p]\n", f);
	for (int i = 0; i < 300 * 1024 / 16; i++)
		fputs("# padding.......\n", f);
	fclose(f);
	assert_int_equal(salvo_conf_load_file(conf, path, "p", &size, &err), SALVO_ERR_LIMIT);
	assert_non_null(strstr(err.text, "larger than 256 KiB"));
	unlink(path);

	assert_int_equal(salvo_conf_load_file(conf, path, "p", &size, &err), SALVO_ERR_IO);
	assert_non_null(strstr(err.text, "cannot open: No such file or directory"));
	assert_int_equal(salvo_conf_load_file(conf, dir, "p", &size, &err), SALVO_ERR_IO);
	assert_non_null(strstr(err.text, "cannot read"));
	assert_int_equal(salvo_conf_load_file(NULL, dir, "p", &size, &err),
			 SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_conf_load_file(conf, NULL, "p", &size, &err),
			 SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_conf_load_file(conf, path, NULL, &size, &err),
			 SALVO_ERR_INVALID_ARGUMENT);
	rmdir(dir);
	salvo_conf_destroy(conf);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    NAMED_TEST("items", test_items),
	    NAMED_TEST("syntax errors", test_syntax_errors),
	    NAMED_TEST("nul byte", test_nul_byte),
	    NAMED_TEST("sticky errors", test_sticky_errors),
	    NAMED_TEST("line length", test_line_length),
	    NAMED_TEST("prefixes against a guard page", test_prefixes_guard_page),
	    NAMED_TEST("random garbage", test_random_garbage),
	    NAMED_TEST("load sections", test_load_sections),
	    NAMED_TEST("defaults and null size", test_defaults_and_null_size),
	    NAMED_TEST("uri order and failover", test_uri_order_and_failover),
	    NAMED_TEST("uri repeated refusals", test_uri_repeated_refusals),
	    NAMED_TEST("unknown key", test_unknown_key),
	    NAMED_TEST("bad values", test_bad_values),
	    NAMED_TEST("other section checked", test_other_section_checked),
	    NAMED_TEST("duplicates", test_duplicates),
	    NAMED_TEST("structure errors", test_structure_errors),
	    NAMED_TEST("limits", test_limits),
	    NAMED_TEST("password never in messages", test_password_never_in_messages),
	    NAMED_TEST("hooks kept", test_hooks_kept),
	    NAMED_TEST("files", test_files),
	};

	return sv_test_main(argc, argv, "ini", tests, sizeof tests / sizeof tests[0]);
}
