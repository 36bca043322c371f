/* check_lock.c: unit tests for the session lock (one POP3 session per
 * maildrop, released when the holder ends, however it ends). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "log.h"
#include "maildrop.h"
#include "testdir.h"

static char lockpath[1100];

static void
setup(void)
{
	test_dir_make("lock");
	snprintf(lockpath, sizeof(lockpath), "%s/poplar-session.lock", test_dir);
}

static void
teardown(void)
{
	test_dir_remove();
}

/* Try the lock in a fresh child process; its exit status is the result
 * (0 busy, 1 locked, 2 error). */
static int
try_in_child(void)
{
	pid_t pid;
	int status;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct session_lock *lock = NULL;
		const char *error;
		int r = session_lock_try(lockpath, &lock, &error);

		session_lock_release(&lock);
		_exit(r < 0 ? 2 : r);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* A child that takes the lock, reports through a pipe and then sleeps
 * until it is killed (or exits when told to). */
static pid_t
holder_start(int *ctl_r)
{
	int ready[2], ctl[2];
	char c;
	pid_t pid;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(ctl), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct session_lock *lock = NULL;
		const char *error;
		char r;

		close(ready[0]);
		close(ctl[1]);
		r = (char)('0' + session_lock_try(lockpath, &lock, &error));
		if (write(ready[1], &r, 1) != 1)
			_exit(3);
		/* Wait for EOF or a byte on ctl; a kill ends it sooner. */
		(void)!read(ctl[0], &r, 1);
		_exit(0);
	}
	close(ready[1]);
	close(ctl[0]);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	close(ready[0]);
	ck_assert_int_eq(c, '1');
	*ctl_r = ctl[1];
	return pid;
}

/* The pid F_GETLK reports, from a child, for a write lock on the file
 * (-1: none). */
static long
holder_pid_seen_by_child(void)
{
	int p[2];
	long seen = -2;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct flock fl;
		long v = -1;
		int fd = open(lockpath, O_RDONLY);

		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_RDLCK;
		fl.l_whence = SEEK_SET;
		if (fd >= 0 && fcntl(fd, F_GETLK, &fl) == 0 &&
		    fl.l_type != F_UNLCK)
			v = (long)fl.l_pid;
		_exit(write(p[1], &v, sizeof(v)) == sizeof(v) ? 0 : 1);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &seen, sizeof(seen)), sizeof(seen));
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	return seen;
}

START_TEST(test_lock_basic)
{
	struct session_lock *lock = NULL;
	const char *error;
	struct stat st;
	int fd;

	ck_assert_int_eq(session_lock_try(lockpath, &lock, &error), 1);
	ck_assert_ptr_nonnull(lock);
	ck_assert_int_eq(stat(lockpath, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	/* Nothing is written into the file (no metadata update per login);
	 * the kernel names the holder. */
	ck_assert_int_eq(st.st_size, 0);
	ck_assert_int_eq(holder_pid_seen_by_child(), (long)getpid());
	/* Opening and closing the file here drops our POSIX lock (it
	 * belongs to the process, not the descriptor). */
	fd = open(lockpath, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(holder_pid_seen_by_child(), -1);
	/* Take it again through a release. */
	session_lock_release(&lock);
	ck_assert_ptr_null(lock);
	session_lock_release(&lock);
	ck_assert_int_eq(session_lock_try(lockpath, &lock, &error), 1);
	ck_assert_int_eq(try_in_child(), 0);
	session_lock_release(&lock);
	ck_assert_int_eq(try_in_child(), 1);
	/* Release then relock in the same process. */
	ck_assert_int_eq(session_lock_try(lockpath, &lock, &error), 1);
	ck_assert_int_eq(try_in_child(), 0);
	session_lock_release(&lock);
}
END_TEST

START_TEST(test_lock_holder_exits)
{
	struct session_lock *lock = NULL;
	const char *error;
	int ctl, status;
	pid_t pid;

	pid = holder_start(&ctl);
	ck_assert_int_eq(session_lock_try(lockpath, &lock, &error), 0);
	ck_assert_ptr_null(lock);
	ck_assert_int_eq(try_in_child(), 0);
	/* The holder ends normally without releasing. */
	close(ctl);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(session_lock_try(lockpath, &lock, &error), 1);
	session_lock_release(&lock);
}
END_TEST

START_TEST(test_lock_holder_killed)
{
	struct session_lock *lock = NULL;
	const char *error;
	int ctl, status;
	pid_t pid;

	pid = holder_start(&ctl);
	ck_assert_int_eq(session_lock_try(lockpath, &lock, &error), 0);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	/* At once, no stale lock to wait out. */
	ck_assert_int_eq(session_lock_try(lockpath, &lock, &error), 1);
	ck_assert_int_eq(try_in_child(), 0);
	session_lock_release(&lock);
	close(ctl);
}
END_TEST

START_TEST(test_lock_errors)
{
	struct session_lock *lock = NULL;
	const char *error = NULL;
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/missing/poplar-session.lock", test_dir);
	ck_assert_int_eq(session_lock_try(p, &lock, &error), -1);
	ck_assert_ptr_null(lock);
	ck_assert_ptr_nonnull(error);

	/* A symlink planted in place of the lock file is not followed. */
	snprintf(p, sizeof(p), "%s/target", test_dir);
	ck_assert_int_eq(symlink(p, lockpath), 0);
	error = NULL;
	ck_assert_int_eq(session_lock_try(lockpath, &lock, &error), -1);
	ck_assert_ptr_nonnull(error);
	ck_assert_int_eq(access(p, F_OK), -1);
	ck_assert_int_eq(unlink(lockpath), 0);

	/* Nor a FIFO (it must not hang either). */
	ck_assert_int_eq(mkfifo(lockpath, 0600), 0);
	error = NULL;
	ck_assert_int_eq(session_lock_try(lockpath, &lock, &error), -1);
	ck_assert_ptr_nonnull(error);
	ck_assert_ptr_null(lock);
}
END_TEST

static Suite *
lock_suite(void)
{
	Suite *s = suite_create("lock");
	TCase *tc = tcase_create("session");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lock_basic);
	tcase_add_test(tc, test_lock_holder_exits);
	tcase_add_test(tc, test_lock_holder_killed);
	tcase_add_test(tc, test_lock_errors);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	log_open(LOG_TARGET_STDERR, "check_lock");
	sr = srunner_create(lock_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
