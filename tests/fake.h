/* SPDX-License-Identifier: MIT */
/*
 * A scripted fake broker in the background (a script in tests/integration): started with
 * its arguments, its port read from the file it writes once it listens, its stdout (the
 * methods it saw, its checks) kept in a log the test reads afterwards. Stops the test at
 * the first failure, like CHECK.
 */
#ifndef SALVO_TEST_FAKE_H
#define SALVO_TEST_FAKE_H

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

extern char **environ;

/* The paths a fake of this process uses: its port file and its log (tag names the test). */
static inline void fake_paths(const char *tag, char *port_path, size_t port_len, char *log_path,
			      size_t log_len)
{
	snprintf(port_path, port_len, "/tmp/salvo-test-%s-%d.port", tag, (int)getpid());
	snprintf(log_path, log_len, "/tmp/salvo-test-%s-%d.log", tag, (int)getpid());
}

/* Start argv (python3 SCRIPT ... with port_path among its arguments), its stdout into
 * log_path; returns its pid once it listens, with *port set. Skipped (77) without
 * SALVO_SOURCE_ROOT, which the callers' scripts live under. */
static inline pid_t fake_spawn(char *const argv[], const char *port_path, const char *log_path,
			       unsigned *port)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;

	unlink(port_path);
	CHECK(posix_spawn_file_actions_init(&fa) == 0);
	CHECK(posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC,
					       0600) == 0);
	CHECK(posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) == 0);
	posix_spawn_file_actions_destroy(&fa);
	/* The port file appears (renamed into place, whole) once it listens. */
	for (int i = 0; i < 400; i++) {
		FILE *f = fopen(port_path, "r");
		if (f) {
			CHECK(fscanf(f, "%u", port) == 1);
			fclose(f);
			unlink(port_path);
			return pid;
		}
		CHECK(waitpid(pid, NULL, WNOHANG) == 0);
		nanosleep(&(struct timespec){0, 25000000}, NULL);
	}
	kill(pid, SIGKILL);
	CHECK(!"the fake broker wrote no port in 10 s");
	return -1;
}

/* The script's path under SALVO_SOURCE_ROOT into buf; without it the test is skipped. */
static inline const char *fake_script(const char *name, char *buf, size_t len)
{
	const char *root = getenv("SALVO_SOURCE_ROOT");

	if (!root) {
		fprintf(stderr, "SALVO_SOURCE_ROOT not set: no fake broker\n");
		exit(77);
	}
	snprintf(buf, len, "%s/tests/integration/%s", root, name);
	return buf;
}

/* The line number (from 1) of the first line of path equal to line at or after line
 * from, or 0. */
static inline int fake_log_find(const char *path, const char *line, int from)
{
	char buf[512];
	FILE *f = fopen(path, "r");
	int n = 0, found = 0;

	CHECK(f);
	while (!found && fgets(buf, sizeof buf, f)) {
		buf[strcspn(buf, "\n")] = '\0';
		if (++n >= from && !strcmp(buf, line))
			found = n;
	}
	fclose(f);
	return found;
}

#endif
