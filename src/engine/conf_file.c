/* SPDX-License-Identifier: MIT */
/*
 * Configuration files: a section of an INI-style file (ini.h) applied to a salvo_conf.
 *
 * The whole file is checked each time, every section applied to a scratch copy, so a
 * mistake anywhere is reported with its line whichever section is asked for. Memory is
 * bounded: one buffer for the file (at most FILE_MAX) and fixed arrays for sections and
 * keys. Messages quote keys and section names, never values (a value may be a password).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_internal.h"
#include "error.h"
#include "ini.h"

#define FILE_MAX     (256u * 1024u)
#define SECTIONS_MAX 64
#define KEYS_MAX     64

struct section {
	struct sv_ini_item head; /* the [name] line */
	const char *body;	 /* what follows it */
	size_t body_len;	 /* up to the next section */
};

/* "path:line: why" (line 0: "path: why"); returns status. */
static int file_error(salvo_error *err, int status, const char *path, unsigned line,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int file_error(salvo_error *err, int status, const char *path, unsigned line,
		      const char *fmt, ...)
{
	char why[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	/* Keep the end of a long path: the file name is what tells the reader most. */
	size_t n = strlen(path);
	const char *shown = n > 48 ? path + n - 45 : path;
	const char *dots = n > 48 ? "..." : "";
	if (line)
		return sv_error_set(err, status, SALVO_ERROR_LOCAL, "%s%s:%u: %s", dots, shown,
				    line, why);
	return sv_error_set(err, status, SALVO_ERROR_LOCAL, "%s%s: %s", dots, shown, why);
}

static bool name_is(const struct sv_ini_item *it, const char *s)
{
	return it->name_len == strlen(s) && memcmp(it->name, s, it->name_len) == 0;
}

static bool same_name(const struct sv_ini_item *a, const struct sv_ini_item *b)
{
	return a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0;
}

/* salvo_conf_set(key, the item's value); the error says where. */
static int set_key(salvo_conf *conf, const char *key, const struct sv_ini_item *it,
		   const char *path, salvo_error *err)
{
	char value[SV_INI_LINE_MAX + 1], errstr[160];
	int rc;

	memcpy(value, it->value, it->value_len);
	value[it->value_len] = '\0';
	rc = salvo_conf_set(conf, key, value, errstr, sizeof errstr);
	/* The value may be a password: leave no copy on the stack. */
	explicit_bzero(value, it->value_len);
	if (!rc)
		return 0;
	/* Name the key as the file spells it ("uri" for a failover), unless the reason does. */
	char name[SV_INI_NAME_MAX + 1];
	memcpy(name, it->name, it->name_len);
	name[it->name_len] = '\0';
	if (strstr(errstr, name))
		return file_error(err, rc, path, it->line, "%s", errstr);
	return file_error(err, rc, path, it->line, "%s: %s", name, errstr);
}

/*
 * A repeated uri line: a failover endpoint, as uri.add takes it (sv_conf_check_failover).
 * The first uri is applied already and the user, password and vhost lines not yet, so the
 * conf holds the first uri's.
 */
static int add_failover(salvo_conf *conf, const struct sv_ini_item *it, const char *path,
			salvo_error *err)
{
	char text[SV_INI_LINE_MAX + 1], errstr[256];
	struct sv_conf_uri *u = malloc(sizeof *u);
	int rc;

	if (!u)
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
	memcpy(text, it->value, it->value_len);
	text[it->value_len] = '\0';
	rc = sv_conf_read_uri(text, u, errstr, sizeof errstr);
	if (!rc)
		rc = sv_conf_check_failover(conf, u, "a repeated uri is a failover endpoint: ",
					    errstr, sizeof errstr);
	if (!rc)
		rc = salvo_conf_set(conf, "uri.add", text, errstr, sizeof errstr);
	if (rc)
		rc = file_error(err, SALVO_ERR_INVALID_ARGUMENT, path, it->line, "uri: %s", errstr);
	/* The URI held a password. */
	explicit_bzero(text, sizeof text);
	explicit_bzero(u, sizeof *u);
	free(u);
	return rc;
}

static int parse_pool_size(const struct sv_ini_item *it, size_t *size, const char *path,
			   salvo_error *err)
{
	uint64_t v;

	if (sv_parse_uint(it->value, it->value_len, &v) || v < 1 || v > SALVO_POOL_MAX)
		return file_error(err, SALVO_ERR_INVALID_ARGUMENT, path, it->line,
				  "pool_size: expected a number from 1 to %d", SALVO_POOL_MAX);
	*size = (size_t)v;
	return 0;
}

/*
 * Apply one section's keys to conf: the first uri, then the failover endpoints (later
 * uri lines and uri.add, in order), then the rest in order, since "uri" resets user,
 * password and vhost and must not undo lines that set them.
 */
static int apply_section(const struct section *sec, salvo_conf *conf, size_t *pool_size,
			 const char *path, salvo_error *err)
{
	struct sv_ini_item keys[KEYS_MAX], it;
	size_t n = 0, first_uri = KEYS_MAX;
	struct sv_ini ini;
	int rc = 0;

	*pool_size = 1;
	/* Checked by find_sections already: only keys, then the end. */
	sv_ini_init(&ini, sec->body, sec->body_len, sec->head.line);
	while (sv_ini_next(&ini, &it) == SV_INI_KEY) {
		bool repeatable = name_is(&it, "uri") || name_is(&it, "uri.add");

		if (n == KEYS_MAX)
			return file_error(err, SALVO_ERR_INVALID_ARGUMENT, path, it.line,
					  "more than %d keys in section [%.*s]", KEYS_MAX,
					  (int)sec->head.name_len, sec->head.name);
		for (size_t i = 0; i < n && !repeatable; i++)
			if (same_name(&keys[i], &it))
				return file_error(err, SALVO_ERR_INVALID_ARGUMENT, path, it.line,
						  "'%.*s' already set at line %u", (int)it.name_len,
						  it.name, keys[i].line);
		if (name_is(&it, "uri") && first_uri == KEYS_MAX)
			first_uri = n;
		keys[n++] = it;
	}
	if (first_uri < n && (rc = set_key(conf, "uri", &keys[first_uri], path, err)))
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (i != first_uri && name_is(&keys[i], "uri"))
			rc = add_failover(conf, &keys[i], path, err);
		else if (name_is(&keys[i], "uri.add"))
			rc = set_key(conf, "uri.add", &keys[i], path, err);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < n; i++) {
		char key[SV_INI_NAME_MAX + 1];

		if (name_is(&keys[i], "uri") || name_is(&keys[i], "uri.add"))
			continue;
		if (name_is(&keys[i], "pool_size")) {
			if ((rc = parse_pool_size(&keys[i], pool_size, path, err)))
				return rc;
			continue;
		}
		memcpy(key, keys[i].name, keys[i].name_len);
		key[keys[i].name_len] = '\0';
		if ((rc = set_key(conf, key, &keys[i], path, err)))
			return rc;
	}
	return 0;
}

/* Split text into sections; reports syntax errors, keys outside a section, duplicates. */
static int find_sections(const char *text, size_t len, struct section *secs, size_t *nsecs,
			 const char *path, salvo_error *err)
{
	struct sv_ini ini;
	struct sv_ini_item it;
	size_t n = 0;

	sv_ini_init(&ini, text, len, 0);
	for (;;) {
		enum sv_ini_kind kind = sv_ini_next(&ini, &it);

		if (kind == SV_INI_ERROR)
			return file_error(err, SALVO_ERR_INVALID_ARGUMENT, path, it.line, "%s",
					  it.error);
		if (n)
			secs[n - 1].body_len =
			    (size_t)((kind == SV_INI_SECTION ? it.start : ini.p) -
				     secs[n - 1].body);
		if (kind == SV_INI_END)
			break;
		if (kind == SV_INI_KEY && !n)
			return file_error(err, SALVO_ERR_INVALID_ARGUMENT, path, it.line,
					  "'%.*s' is outside any section: a [name] line must "
					  "come first",
					  (int)it.name_len, it.name);
		if (kind != SV_INI_SECTION)
			continue;
		for (size_t i = 0; i < n; i++)
			if (same_name(&secs[i].head, &it))
				return file_error(err, SALVO_ERR_INVALID_ARGUMENT, path, it.line,
						  "section [%.*s] already defined at line %u",
						  (int)it.name_len, it.name, secs[i].head.line);
		if (n == SECTIONS_MAX)
			return file_error(err, SALVO_ERR_INVALID_ARGUMENT, path, it.line,
					  "more than %d sections", SECTIONS_MAX);
		secs[n++] = (struct section){.head = it, .body = ini.p};
	}
	*nsecs = n;
	return 0;
}

int sv_conf_load_text(salvo_conf *conf, const char *text, size_t len, const char *path,
		      const char *section, size_t *pool_size, salvo_error *err)
{
	struct section secs[SECTIONS_MAX];
	salvo_conf *kept = NULL;
	size_t nsecs = 0, kept_size = 1;
	int rc;

	if (!conf || !text || !path || !section || !section[0])
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "conf, text, path and a section name are required");
	rc = find_sections(text, len, secs, &nsecs, path, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < nsecs; i++) {
		salvo_conf *scratch = salvo_conf_dup(conf);
		size_t size;

		if (!scratch) {
			salvo_conf_destroy(kept);
			return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
					    "out of memory");
		}
		rc = apply_section(&secs[i], scratch, &size, path, err);
		if (!rc && name_is(&secs[i].head, section)) {
			kept = scratch;
			kept_size = size;
			continue;
		}
		salvo_conf_destroy(scratch);
		if (rc) {
			salvo_conf_destroy(kept);
			return rc;
		}
	}
	if (!kept) {
		char found[160] = "";
		size_t used = 0;

		for (size_t i = 0; i < nsecs && used < sizeof found; i++)
			used += (size_t)snprintf(found + used, sizeof found - used, "%s%.*s",
						 i ? ", " : "", (int)secs[i].head.name_len,
						 secs[i].head.name);
		return file_error(err, SALVO_ERR_INVALID_ARGUMENT, path, 0,
				  "no section [%.64s] (found: %s)", section,
				  nsecs ? found : "none");
	}
	*conf = *kept;
	salvo_conf_destroy(kept);
	if (pool_size)
		*pool_size = kept_size;
	return 0;
}

int salvo_conf_load_file(salvo_conf *conf, const char *path, const char *section, size_t *pool_size,
			 salvo_error *err)
{
	size_t len = 0;
	char *buf;
	int fd, rc;

	if (!conf || !path || !section)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_conf_load_file: conf, path and section are required");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return file_error(err, SALVO_ERR_IO, path, 0, "cannot open: %s", strerror(errno));
	/* One byte beyond the limit tells a file at the limit from a longer one. */
	buf = malloc(FILE_MAX + 1);
	if (!buf) {
		close(fd);
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, FILE_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = file_error(err, SALVO_ERR_IO, path, 0, "cannot read: %s",
					strerror(errno));
			goto out;
		}
		len += (size_t)r;
		if (r == 0 || len > FILE_MAX)
			break;
	}
	if (len > FILE_MAX)
		rc = file_error(err, SALVO_ERR_LIMIT, path, 0, "larger than %u KiB",
				FILE_MAX / 1024);
	else
		rc = sv_conf_load_text(conf, buf, len, path, section, pool_size, err);
out:
	/* The file may hold passwords. */
	explicit_bzero(buf, len);
	free(buf);
	close(fd);
	return rc;
}
