/* SPDX-License-Identifier: MIT */
/*
 * salvo-perf --plot FILE.png: the per-second rows drawn by gnuplot after the run.
 *
 * The rows go, as the run goes, to a data file in a private directory (mkdtemp, mode
 * 0700) with a gnuplot script written after the run; gnuplot runs on them with -d (no
 * gnuplotrc, no ~/.gnuplot), an environment of LC_ALL=C only, stdin from /dev/null and its
 * stdout on the PNG, which salvo-perf opened before the run. Its messages go to a file
 * in the directory and are shown only when it fails. Nothing of the user's reaches it but
 * what the script quotes: the title's routing key and broker address, in single-quoted
 * strings (no escapes inside, '' for a quote) on a terminal without enhanced text.
 *
 * The panels: messages/s (sent; acked with confirms; consumed with consumers), what is
 * waiting (in flight with confirms, published and not yet consumed with consumers) and
 * the latencies (confirm, end to end) of each second, on a log scale in ms. A panel or a
 * line without data is left out: gnuplot fails on a log axis with nothing to draw.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "perf.h"

/* Rows over a shorter interval get no rates in the plot. */
#define MIN_RATE_INTERVAL_S 0.25

/* The data file's columns, 1-based for gnuplot's using. */
enum {
	COL_T = 1,
	COL_SENT_RATE,
	COL_ACKED_RATE,
	COL_CONSUMED_RATE,
	COL_IN_FLIGHT,
	COL_NOT_CONSUMED,
	COL_CONFIRM, /* p50, p99, max: three columns */
	COL_E2E = COL_CONFIRM + 3,
};

/* Confirms and the producers' side in blues, consumers in reds: p50, p99, max. */
static const char *const BLUE[] = {"#1f77b4", "#17becf", "#6baed6"};
static const char *const RED[] = {"#d62728", "#ff7f0e", "#e377c2"};
static const char GREEN[] = "#2ca02c";

char *plot_find_gnuplot(void)
{
	const char *path = getenv("PATH");
	char *full;

	if (!path || !*path)
		return NULL;
	while (*path) {
		size_t n = strcspn(path, ":");

		/* An empty entry is the current directory, as for the shell. */
		if (asprintf(&full, "%.*s/gnuplot", (int)n, n ? path : ".") < 0)
			return NULL;
		if (access(full, X_OK) == 0)
			return full;
		free(full);
		path += n + (path[n] == ':');
	}
	return NULL;
}

static void path_in(const struct plot *p, const char *name, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", p->dir, name);
}

int plot_open(struct plot *p, const struct options *o)
{
	const char *tmp = getenv("TMPDIR");
	char path[sizeof p->dir + 16];

	p->png = open(o->plot, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (p->png < 0) {
		fprintf(stderr, PROG ": write %s: %s\n", o->plot, strerror(errno));
		return -1;
	}
	if (!tmp || !*tmp || strlen(tmp) > sizeof p->dir - 32)
		tmp = "/tmp";
	snprintf(p->dir, sizeof p->dir, "%s/salvo-perf.XXXXXX", tmp);
	if (!mkdtemp(p->dir)) {
		fprintf(stderr, PROG ": --plot: make a directory in %s: %s\n", tmp,
			strerror(errno));
		p->dir[0] = '\0';
		return -1;
	}
	path_in(p, "rows.dat", path, sizeof path);
	p->data = fopen(path, "w");
	if (!p->data) {
		fprintf(stderr, PROG ": --plot: write %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* " p50 p99 max" in ms of the latencies between prev and st, NaN when none completed.
 * Returns whether there were some. */
static bool row_latency(FILE *f, const salvo_pub_stats *st, const salvo_pub_stats *prev)
{
	salvo_pub_stats d;

	interval_latency(st, prev, &d);
	if (!d.latency_count) {
		fputs(" NaN NaN NaN", f);
		return false;
	}
	fprintf(f, " %.4f %.4f %.4f", (double)salvo_stats_latency_ns(&d, 0.5) / 1e6,
		(double)salvo_stats_latency_ns(&d, 0.99) / 1e6, (double)d.latency_max_ns / 1e6);
	return true;
}

void plot_row(struct plot *p, const struct options *o, const struct sample *s,
	      const struct sample *prev)
{
	uint64_t taken = o->confirm != SALVO_CONFIRM_NONE ? s->pub.acked : s->sent;

	fprintf(p->data, "%.3f", s->t);
	/* The last row's interval, from the last tick to the end, can be a few ms: a rate
	 * over it is noise that would dwarf the others (unless it is the only row). */
	if (p->rows && s->t - prev->t < MIN_RATE_INTERVAL_S)
		fputs(" NaN NaN NaN", p->data);
	else
		fprintf(p->data, " %.1f %.1f %.1f", rate_between(s, prev, s->sent, prev->sent),
			rate_between(s, prev, s->pub.acked, prev->pub.acked),
			rate_between(s, prev, s->consumed, prev->consumed));
	fprintf(p->data, " %" PRIu64 " %" PRIu64, s->pub.in_flight,
		taken > s->consumed_run ? taken - s->consumed_run : 0);
	p->confirm_lat |= row_latency(p->data, &s->pub, &prev->pub);
	p->e2e_lat |= row_latency(p->data, &s->e2e, &prev->e2e);
	fputc('\n', p->data);
	p->rows++;
}

/* s as a gnuplot string constant: single quotes, a quote doubled, control characters
 * (which would end the line) as spaces. */
static void put_quoted(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		fputc((unsigned char)*s < ' ' || *s == 0x7f ? ' ' : *s, f);
	}
	fputc('\'', f);
}

/* The broker's address from a URI: scheme://host:port, without user, password, vhost or
 * query. */
static void uri_address(const char *uri, char *buf, size_t size)
{
	const char *sep = strstr(uri, "://");
	const char *host = sep ? sep + 3 : uri;
	size_t n = strcspn(host, "/?#");

	for (size_t i = n; i > 0; i--)
		if (host[i - 1] == '@') {
			n -= i;
			host += i;
			break;
		}
	snprintf(buf, size, "%.*s%.*s", sep ? (int)(sep + 3 - uri) : 0, uri, (int)n, host);
}

/* The title: the run's parameters, then what it achieved. */
static void put_title(FILE *f, const struct options *o, const struct result *r)
{
	char line[1024], addr[512], window[64] = "", extra[256] = "";
	int n;

	uri_address(o->uris[0], addr, sizeof addr);
	if (o->window)
		snprintf(window, sizeof window, " (window %zu)", o->window);
	n = snprintf(line, sizeof line,
		     "salvo-perf: confirm %s%s, %u producer%s on %u connection%s, %zu B %s "
		     "bodies%s",
		     confirm_names[o->confirm], window, o->producers, o->producers == 1 ? "" : "s",
		     o->connections, o->connections == 1 ? "" : "s", o->size, body_names[o->body],
		     o->flags & SALVO_MSG_PERSISTENT ? ", persistent" : "");
	if (o->rate && n > 0 && (size_t)n < sizeof line)
		snprintf(line + n, sizeof line - (size_t)n, ", --rate %" PRIu64, o->rate);
	put_quoted(f, line);
	if (o->batch.opts.max_records)
		snprintf(extra, sizeof extra, ", batches of up to %zu records",
			 o->batch.opts.max_records);
	if (o->consumers)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
			 ", %u consumer%s (prefetch %u%s)", o->consumers,
			 o->consumers == 1 ? "" : "s", o->prefetch,
			 o->auto_ack ? ", auto-ack" : "");
	snprintf(line, sizeof line,
		 "%s%s, routing key %s%s; sent %" PRIu64 " in %.2f s: %.0f msgs/s%s", addr,
		 o->nuris > 1 ? " (and failover URIs)" : "", o->routing_key, extra, r->sent,
		 r->seconds, r->seconds > 0 ? (double)r->sent / r->seconds : 0.0,
		 r->failed || r->interrupted ? " (stopped early)" : "");
	fputs(" . \"\\n\" . ", f);
	put_quoted(f, line);
}

static int write_script(const struct plot *p, const struct options *o, const struct result *r)
{
	char path[sizeof p->dir + 16];
	bool confirm = o->confirm != SALVO_CONFIRM_NONE;
	bool queue = confirm || o->consumers;
	bool latency = p->confirm_lat || p->e2e_lat;
	int panels = 1 + queue + latency;
	FILE *f;

	path_in(p, "plot.gp", path, sizeof path);
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, PROG ": --plot: write %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f,
		"if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
		"  set terminal pngcairo size 1200,%d font ',10' noenhanced\n"
		"} else {\n"
		"  set terminal png size 1200,%d noenhanced\n"
		"}\n"
		"data = ",
		120 + 300 * panels, 120 + 300 * panels);
	path_in(p, "rows.dat", path, sizeof path);
	put_quoted(f, path);
	fputs("\nset multiplot layout ", f);
	fprintf(f, "%d,1 title (", panels);
	put_title(f, o, r);
	/* The keys outside on the right, in margins of the same width on every panel, so
	 * that the time axes line up. */
	fputs(") font ',11'\n"
	      "set grid\n"
	      "set key outside right top vertical Left reverse width 1\n"
	      "set lmargin 12\n"
	      "set rmargin 36\n"
	      "set xlabel 'seconds since the start'\n"
	      "set xrange [0:*]\n"
	      "set autoscale xfixmax\n"
	      "set format y '%.1s%c'\n",
	      f);

	fputs("set title 'Messages per second, each second'\n"
	      "set ylabel 'messages/s'\n"
	      "set yrange [0:*]\n",
	      f);
	fprintf(f,
		"plot data using 1:%d with linespoints lw 2 pt 7 ps 0.6 lc rgb '%s' "
		"title 'sent'",
		COL_SENT_RATE, BLUE[0]);
	if (confirm)
		fprintf(f,
			", \\\n     data using 1:%d with linespoints lw 2 pt 5 ps 0.6 "
			"lc rgb '%s' title 'acked by the broker'",
			COL_ACKED_RATE, GREEN);
	if (o->consumers)
		fprintf(f,
			", \\\n     data using 1:%d with linespoints lw 2 pt 9 ps 0.6 "
			"lc rgb '%s' title 'consumed'",
			COL_CONSUMED_RATE, RED[0]);
	fputc('\n', f);

	if (queue) {
		fputs("set title 'Messages waiting, at each second'\n"
		      "set ylabel 'messages'\n",
		      f);
		if (confirm)
			fprintf(f,
				"plot data using 1:%d with linespoints lw 2 pt 7 ps 0.6 "
				"lc rgb '%s' title 'in flight (no confirm yet)'",
				COL_IN_FLIGHT, BLUE[0]);
		if (o->consumers)
			fprintf(f,
				"%s data using 1:%d with linespoints lw 2 pt 9 ps 0.6 "
				"lc rgb '%s' title '%s, not yet consumed'",
				confirm ? ", \\\n    " : "plot", COL_NOT_CONSUMED, RED[0],
				confirm ? "acked" : "sent");
		fputc('\n', f);
	}

	if (latency) {
		fputs("set title 'Latency, each second: confirm (publish to the broker''s ack), "
		      "end to end (publish to consume); log scale'\n"
		      "set ylabel 'latency (ms)'\n"
		      "set logscale y\n"
		      "set yrange [*:*]\n"
		      "set format y '%g'\n",
		      f);
		const char *cmd = "plot";
		static const char *const q[] = {"p50", "p99", "max"};
		static const char *const style[] = {"lw 2 pt 7", "lw 2 pt 5", "lw 1 dt 2 pt 1"};

		for (int i = 0; i < 3 && p->confirm_lat; i++) {
			fprintf(f,
				"%s data using 1:%d with linespoints %s ps 0.6 lc rgb '%s' "
				"title 'confirm %s'",
				cmd, COL_CONFIRM + i, style[i], BLUE[i], q[i]);
			cmd = ", \\\n    ";
		}
		for (int i = 0; i < 3 && p->e2e_lat; i++) {
			fprintf(f,
				"%s data using 1:%d with linespoints %s ps 0.6 lc rgb '%s' "
				"title 'end to end %s'",
				cmd, COL_E2E + i, style[i], RED[i], q[i]);
			cmd = ", \\\n    ";
		}
		fputc('\n', f);
	}
	fputs("unset multiplot\n", f);
	if (fclose(f)) {
		fprintf(stderr, PROG ": --plot: write the script: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Run gnuplot on the script, its stdout on the PNG. Returns its exit status, or -1 when
 * it could not be started (reported). */
static int run_gnuplot(const struct plot *p, const struct options *o)
{
	char script[sizeof p->dir + 16], errs[sizeof p->dir + 16];
	char *argv[] = {"gnuplot", "-d", script, NULL};
	char *envp[] = {"LC_ALL=C", NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	pid_t pid;
	int rc, ws;

	path_in(p, "plot.gp", script, sizeof script);
	path_in(p, "gnuplot.err", errs, sizeof errs);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p->png, 1);
	posix_spawn_file_actions_addopen(&fa, 2, errs, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	/* Every thread here blocks SIGINT and SIGTERM (the signal thread takes them):
	 * gnuplot gets them back. */
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&pid, o->gnuplot, &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc) {
		fprintf(stderr, PROG ": --plot: run %s: %s\n", o->gnuplot, strerror(rc));
		return -1;
	}
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, PROG ": --plot: wait for gnuplot: %s\n", strerror(errno));
			return -1;
		}
	if (WIFEXITED(ws))
		return WEXITSTATUS(ws);
	fprintf(stderr, PROG ": --plot: gnuplot: %s\n", strsignal(WTERMSIG(ws)));
	return -1;
}

/* gnuplot's messages, after it failed. */
static void show_errors(const struct plot *p)
{
	char path[sizeof p->dir + 16], buf[4096];
	FILE *f;
	size_t n;

	path_in(p, "gnuplot.err", path, sizeof path);
	f = fopen(path, "r");
	if (!f)
		return;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		fwrite(buf, 1, n, stderr);
	fclose(f);
}

int plot_draw(struct plot *p, const struct options *o, const struct result *r)
{
	struct stat st;
	bool bad = ferror(p->data);
	int rc;

	if (fclose(p->data) || bad) {
		p->data = NULL;
		fprintf(stderr, PROG ": --plot: write the rows: %s\n",
			bad ? "write error" : strerror(errno));
		return -1;
	}
	p->data = NULL;
	if (!p->rows) {
		fprintf(stderr, PROG ": --plot: no rows to draw\n");
		return -1;
	}
	if (write_script(p, o, r))
		return -1;
	rc = run_gnuplot(p, o);
	if (rc > 0) {
		show_errors(p);
		fprintf(stderr, PROG ": --plot: gnuplot failed (exit status %d)\n", rc);
	}
	if (rc)
		return -1;
	if (fstat(p->png, &st) || st.st_size == 0) {
		show_errors(p);
		fprintf(stderr, PROG ": --plot: gnuplot wrote nothing to %s\n", o->plot);
		return -1;
	}
	p->drawn = true;
	return 0;
}

int plot_close(struct plot *p, const struct options *o)
{
	static const char *const files[] = {"rows.dat", "plot.gp", "gnuplot.err"};
	char path[sizeof p->dir + 16];
	int rc = 0;

	if (p->data)
		fclose(p->data);
	p->data = NULL;
	if (p->png < 0)
		return 0;
	if (close(p->png)) {
		fprintf(stderr, PROG ": write %s: %s\n", o->plot, strerror(errno));
		rc = -1;
	}
	p->png = -1;
	/* No empty or half-written PNG is left behind a run that failed or drew nothing. */
	if (!p->drawn)
		unlink(o->plot);
	if (p->dir[0]) {
		for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
			path_in(p, files[i], path, sizeof path);
			unlink(path);
		}
		if (rmdir(p->dir))
			fprintf(stderr, PROG ": --plot: remove %s: %s\n", p->dir, strerror(errno));
		p->dir[0] = '\0';
	}
	return rc;
}
