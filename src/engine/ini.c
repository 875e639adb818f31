/* SPDX-License-Identifier: MIT */
/* The INI tokenizer (ini.h): one line at a time, every length checked before it is used. */
#include <string.h>

#include "ini.h"

void sv_ini_init(struct sv_ini *ini, const char *buf, size_t len, unsigned line)
{
	ini->p = buf;
	ini->end = buf + len;
	ini->line = line;
	ini->error = NULL;
	ini->error_line = 0;
	if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		ini->p += 3;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

static enum sv_ini_kind fail(struct sv_ini *ini, struct sv_ini_item *item, const char *why)
{
	if (!ini->error) {
		ini->error = why;
		ini->error_line = ini->line;
		ini->p = ini->end;
	}
	*item = (struct sv_ini_item){
	    .kind = SV_INI_ERROR, .line = ini->error_line, .error = ini->error};
	return SV_INI_ERROR;
}

/* Length of the name at s (at most n bytes long); 0 when none starts there. */
static size_t name_len(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && is_name_char(s[i]))
		i++;
	return i;
}

/* Parse one line [s, s + n) (its end and any '\r' already cut); 0 for a line to skip. */
static enum sv_ini_kind parse_line(struct sv_ini *ini, struct sv_ini_item *item, const char *s,
				   size_t n)
{
	size_t i = 0, len;

	while (i < n && is_blank(s[i]))
		i++;
	while (n > i && is_blank(s[n - 1]))
		n--;
	if (i == n || s[i] == '#' || s[i] == ';')
		return SV_INI_END;
	if (s[i] == '[') {
		i++;
		while (i < n && is_blank(s[i]))
			i++;
		len = name_len(s + i, n - i);
		if (!len)
			return fail(ini, item,
				    "expected a section name ([A-Za-z0-9_.-]) after '['");
		if (len > SV_INI_NAME_MAX)
			return fail(ini, item, "section name longer than 64 bytes");
		item->name = s + i;
		item->name_len = len;
		i += len;
		while (i < n && is_blank(s[i]))
			i++;
		if (i == n || s[i] != ']')
			return fail(ini, item, "expected ']' after the section name");
		if (i + 1 != n)
			return fail(ini, item, "unexpected text after ']'");
		item->kind = SV_INI_SECTION;
		return SV_INI_SECTION;
	}
	len = name_len(s + i, n - i);
	if (!len)
		return fail(ini, item, "expected a key ([A-Za-z0-9_.-]), a [section] or a comment");
	if (len > SV_INI_NAME_MAX)
		return fail(ini, item, "key longer than 64 bytes");
	item->name = s + i;
	item->name_len = len;
	i += len;
	while (i < n && is_blank(s[i]))
		i++;
	if (i == n || s[i] != '=')
		return fail(ini, item, "expected '=' after the key");
	i++;
	while (i < n && is_blank(s[i]))
		i++;
	for (size_t k = i; k < n; k++)
		if ((unsigned char)s[k] < 0x20 && s[k] != '\t')
			return fail(ini, item, "control character in the value");
	item->value = s + i;
	item->value_len = n - i;
	item->kind = SV_INI_KEY;
	return SV_INI_KEY;
}

enum sv_ini_kind sv_ini_next(struct sv_ini *ini, struct sv_ini_item *item)
{
	if (ini->error)
		return fail(ini, item, ini->error);
	while (ini->p < ini->end) {
		size_t avail = (size_t)(ini->end - ini->p), n;
		const char *s = ini->p, *nl = memchr(s, '\n', avail);
		enum sv_ini_kind kind;

		n = nl ? (size_t)(nl - s) : avail;
		ini->line++;
		if (memchr(s, '\0', n))
			return fail(ini, item, "NUL byte in the line");
		if (n > SV_INI_LINE_MAX + (size_t)(n > 0 && s[n - 1] == '\r'))
			return fail(ini, item, "line longer than 8192 bytes");
		ini->p = nl ? nl + 1 : ini->end;
		if (n > 0 && s[n - 1] == '\r')
			n--;
		*item = (struct sv_ini_item){.line = ini->line, .start = s};
		kind = parse_line(ini, item, s, n);
		if (kind != SV_INI_END)
			return kind;
	}
	*item = (struct sv_ini_item){.kind = SV_INI_END, .line = ini->line};
	return SV_INI_END;
}
