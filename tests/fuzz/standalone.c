/* SPDX-License-Identifier: MIT */
/*
 * main() for fuzz targets built without libFuzzer: replay inputs, so that the committed
 * corpus runs as a test with any compiler. Each argument is a file, or a directory whose
 * files (recursively, in name order) are inputs. An oracle failure or a crash ends the
 * run as it would under libFuzzer; a path that cannot be read is reported and makes the
 * exit status 1 once the other inputs have run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

static unsigned long ran;

static int run_file(const char *path, size_t size)
{
	/* Exactly the input's size, as libFuzzer gives it: a read past it is caught. */
	uint8_t *buf = malloc(size ? size : 1);
	size_t got = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || !buf) {
		fprintf(stderr, "%s: %s\n", path, fd < 0 ? strerror(errno) : "out of memory");
		goto fail;
	}
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "%s: %s\n", path, n ? strerror(errno) : "file shrank");
			goto fail;
		}
		got += (size_t)n;
	}
	close(fd);
	LLVMFuzzerTestOneInput(buf, size);
	ran++;
	free(buf);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return -1;
}

static int run_path(const char *path)
{
	struct dirent **names;
	struct stat st;
	int n, rc = 0;

	if (stat(path, &st)) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (S_ISREG(st.st_mode))
		return run_file(path, (size_t)st.st_size);
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: neither a file nor a directory\n", path);
		return -1;
	}
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char sub[PATH_MAX];
		const char *name = names[i]->d_name;

		if (strcmp(name, ".") && strcmp(name, "..")) {
			if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, name) >= sizeof sub) {
				fprintf(stderr, "%s/%s: path too long\n", path, name);
				rc = -1;
			} else if (run_path(sub)) {
				rc = -1;
			}
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	int status = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n"
				"Run each file (directories: every file beneath) through the fuzz "
				"target once.\n",
			argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++)
		if (run_path(argv[i]))
			status = 1;
	printf("%s: %lu inputs ran\n", argv[0], ran);
	return status;
}
