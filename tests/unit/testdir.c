/* testdir.c: a temporary directory per test, the log caught in a file,
 * whole files written and read with assertions (testdir.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "log.h"
#include "testdir.h"

char test_dir[1024];
static char log_path[sizeof(test_dir) + 8];
static int saved_stderr = -1;

void
test_dir_make(const char *tag)
{
	const char *base = getenv("TMPDIR");

	if (base == NULL || *base == '\0')
		base = "/tmp";
	snprintf(test_dir, sizeof(test_dir), "%s/poplar-%s.XXXXXX", base, tag);
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

void
test_dir_remove(void)
{
	fflush(stderr);
	if (saved_stderr >= 0) {
		dup2(saved_stderr, 2);
		close(saved_stderr);
		saved_stderr = -1;
	}
	if (test_dir[0] != '\0')
		ck_assert_int_eq(nftw(test_dir, rm_one, 16,
				      FTW_DEPTH | FTW_PHYS), 0);
	test_dir[0] = '\0';
}

void
test_log_catch(const char *ident)
{
	int fd;

	ck_assert(test_dir[0] != '\0');
	snprintf(log_path, sizeof(log_path), "%s/log", test_dir);
	log_open(LOG_TARGET_STDERR, ident);
	fflush(stderr);
	saved_stderr = dup(2);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	dup2(fd, 2);
	close(fd);
}

const char *
test_log_text(void)
{
	static char buf[65536];
	ssize_t n;
	int fd;

	fflush(stderr);
	fd = open(log_path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void
put(const char *path, int flags, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0600);

	ck_assert_msg(fd >= 0, "cannot open %s", path);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

void
test_write_file(const char *path, const void *data, size_t len)
{
	put(path, O_TRUNC, data, len);
}

void
test_append_file(const char *path, const void *data, size_t len)
{
	put(path, O_APPEND, data, len);
}

char *
test_read_file(const char *path, size_t *len_r)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY);

	ck_assert_msg(fd >= 0, "cannot open %s", path);
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(read(fd, buf, (size_t)st.st_size),
			 (ssize_t)st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	*len_r = (size_t)st.st_size;
	return buf;
}
