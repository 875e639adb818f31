/* SPDX-License-Identifier: MIT */
/*
 * A salvo-sink child process for a test: started on an ephemeral 127.0.0.1 port (which it
 * writes to a port file in a private temporary directory), stopped by its PID.
 */
#ifndef SALVO_TEST_SINK_CHILD_H
#define SALVO_TEST_SINK_CHILD_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check.h"

static const char *sink_exe;
static pid_t sink_pid;
static char sink_dir[64];
static int sink_port;

static void stop_sink(void)
{
	char path[128];

	if (sink_pid > 0) {
		kill(sink_pid, SIGTERM);
		waitpid(sink_pid, NULL, 0);
		sink_pid = 0;
	}
	if (sink_dir[0]) {
		snprintf(path, sizeof path, "%s/port", sink_dir);
		unlink(path);
		rmdir(sink_dir);
		sink_dir[0] = '\0';
	}
}

/*
 * The before hook (run_cases, check.h) of a program whose cases start sinks: the path of
 * salvo-sink, the operand after the case name, is in sink_exe; 2 when it is missing.
 */
static int need_sink(void)
{
	if (sink_exe)
		return 0;
	fprintf(stderr, "usage: PROGRAM CASE SALVO_SINK\n");
	return 2;
}

/* Start sink_exe with the given options (NULL-terminated) and wait for its port. */
static void start_sink(const char *opt, ...)
{
	const char *argv[16] = {sink_exe, "--listen", "127.0.0.1:0", "--port-file", NULL,
				"--quiet"};
	char port_file[128];
	int argc = 6;
	va_list ap;

	snprintf(sink_dir, sizeof sink_dir, "/tmp/salvo-test-sink.XXXXXX");
	CHECK(mkdtemp(sink_dir));
	snprintf(port_file, sizeof port_file, "%s/port", sink_dir);
	argv[4] = port_file;
	va_start(ap, opt);
	for (const char *a = opt; a && argc < 15; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	sink_pid = fork();
	CHECK(sink_pid >= 0);
	if (sink_pid == 0) {
		execv(sink_exe, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		FILE *f = fopen(port_file, "r");
		if (f) {
			int n = fscanf(f, "%d", &sink_port);
			fclose(f);
			if (n == 1 && sink_port > 0)
				return;
		}
		CHECK(waitpid(sink_pid, NULL, WNOHANG) == 0);
		usleep(10000);
	}
	fprintf(stderr, "salvo-sink wrote no port file\n");
	exit(1);
}

#endif
