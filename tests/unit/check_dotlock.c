/* check_dotlock.c: unit tests for NAME.lock dotlocks: two processes,
 * bounded waiting, stale locks (broken only when old and with a dead or
 * unknown holder, and logged), the link-count rule, and interplay with
 * Debian's dotlockfile(1) when it is installed. */
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
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "dotlock.h"
#include "log.h"
#include "util.h"
#include "testdir.h"

static char mbox[1100], lockname[1200];

static void
setup(void)
{
	test_dir_make("dotlock");
	snprintf(mbox, sizeof(mbox), "%s/alice", test_dir);
	snprintf(lockname, sizeof(lockname), "%s.lock", mbox);
	/* Log lines go to stderr: catch them in a file. */
	test_log_catch("check_dotlock");
}

static void
teardown(void)
{
	test_dir_remove();
}

/* Entries of test_dir other than the log and the named files. */
static int
stray_files(void)
{
	char cmd[1200];
	FILE *p;
	int n = 0;
	char line[512];

	snprintf(cmd, sizeof(cmd), "ls -A '%s'", test_dir);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (fgets(line, sizeof(line), p) != NULL)
		if (strncmp(line, ".lk", 3) == 0)
			n++;
	pclose(p);
	return n;
}

static void
write_lock(const char *text, time_t age)
{
	struct timeval tv[2];
	int fd = open(lockname, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	if (text != NULL)
		ck_assert_int_eq(write(fd, text, strlen(text)),
				 (ssize_t)strlen(text));
	close(fd);
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= age;
	tv[1] = tv[0];
	ck_assert_int_eq(utimes(lockname, tv), 0);
}

/* A pid that is certainly not running: a child that has been reaped. */
static pid_t
dead_pid(void)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	return pid;
}

START_TEST(test_take_release)
{
	struct dotlock_settings set = { 300, 0 };
	struct dotlock *l = NULL;
	const char *error = NULL;
	struct stat st;

	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 1);
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(lstat(lockname, &st), 0);
	/* The link-count rule leaves exactly one name: the temporary file
	 * is gone and the lock has one link. */
	ck_assert_int_eq((int)st.st_nlink, 1);
	ck_assert_int_eq(stray_files(), 0);
	ck_assert_int_eq(dotlock_read_pid(lockname), getpid());
	ck_assert_int_eq(dotlock_touch(l), 0);
	dotlock_release(&l);
	ck_assert_ptr_null(l);
	ck_assert_int_eq(access(lockname, F_OK), -1);
	dotlock_release(&l);            /* NULL is fine */
}
END_TEST

START_TEST(test_busy_bounded)
{
	struct dotlock_settings set = { 300, 1 };
	struct dotlock *l = NULL;
	const char *error = NULL;
	uint64_t t0;

	/* A live holder (ourselves), an old lock: never broken. */
	{
		char text[32];

		snprintf(text, sizeof(text), "%ld\n", (long)getpid());
		write_lock(text, 3600);
	}
	t0 = now_ms();
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 0);
	ck_assert_ptr_null(l);
	ck_assert_uint_ge(now_ms() - t0, 900);
	ck_assert_uint_lt(now_ms() - t0, 3000);
	set.timeout = 0;
	t0 = now_ms();
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 0);
	ck_assert_uint_lt(now_ms() - t0, 500);
	ck_assert_int_eq(stray_files(), 0);
	ck_assert_ptr_null(strstr(test_log_text(), "broke"));
	ck_assert_int_eq(access(lockname, F_OK), 0);
}
END_TEST

/* Two processes: the second waits until the first releases. */
START_TEST(test_two_processes)
{
	struct dotlock_settings set = { 300, 5 };
	struct dotlock *l = NULL;
	const char *error = NULL;
	int ready[2], go[2];
	pid_t pid;
	char c;
	int status;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct dotlock *cl = NULL;
		const char *e;
		char r;

		close(ready[0]);
		close(go[1]);
		r = (char)('0' + dotlock_take(mbox, &set, &cl, &e));
		(void)!write(ready[1], &r, 1);
		(void)!read(go[0], &r, 1);
		dotlock_release(&cl);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	ck_assert_int_eq(c, '1');
	ck_assert_int_eq(dotlock_read_pid(lockname), pid);
	set.timeout = 0;
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 0);
	/* Let the child go in a moment; we wait meanwhile. */
	ck_assert_int_eq(write(go[1], "x", 1), 1);
	set.timeout = 5;
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(dotlock_read_pid(lockname), getpid());
	dotlock_release(&l);
	close(ready[0]);
	close(go[1]);
	ck_assert_ptr_null(strstr(test_log_text(), "broke"));
}
END_TEST

START_TEST(test_stale_dead_holder)
{
	struct dotlock_settings set = { 60, 0 };
	struct dotlock *l = NULL;
	const char *error = NULL;
	char text[32];
	pid_t dead = dead_pid();

	snprintf(text, sizeof(text), "%ld\n", (long)dead);
	/* Dead holder but young: kept. */
	write_lock(text, 10);
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 0);
	ck_assert_ptr_null(strstr(test_log_text(), "broke"));
	/* Dead holder and old: broken, logged, and ours. */
	write_lock(text, 120);
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 1);
	ck_assert_ptr_nonnull(strstr(test_log_text(), "broke stale lock"));
	snprintf(text, sizeof(text), "holder pid %ld is gone", (long)dead);
	ck_assert_ptr_nonnull(strstr(test_log_text(), text));
	ck_assert_int_eq(dotlock_read_pid(lockname), getpid());
	dotlock_release(&l);
}
END_TEST

START_TEST(test_stale_live_holder)
{
	struct dotlock_settings set = { 0, 0 };
	struct dotlock *l = NULL;
	const char *error = NULL;
	char text[32];
	pid_t pid;
	int status;

	/* A live process (a child of ours) holds it: even with a stale age
	 * of 0 and an old lock, it stays. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pause();
		_exit(0);
	}
	snprintf(text, sizeof(text), "%ld\n", (long)pid);
	write_lock(text, 86400);
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 0);
	ck_assert_ptr_null(strstr(test_log_text(), "broke"));
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	/* Now it is dead: broken at once with stale age 0. */
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 1);
	ck_assert_ptr_nonnull(strstr(test_log_text(), "broke stale lock"));
	dotlock_release(&l);
}
END_TEST

START_TEST(test_stale_no_pid)
{
	struct dotlock_settings set = { 60, 0 };
	struct dotlock *l = NULL;
	const char *error = NULL;

	/* Empty (as procmail's lockfile writes them) or garbage: no holder
	 * to ask, so age alone decides. */
	write_lock(NULL, 30);
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 0);
	write_lock(NULL, 61);
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 1);
	ck_assert_ptr_nonnull(strstr(test_log_text(), "no holder pid"));
	dotlock_release(&l);
	write_lock("12x\n", 100);
	ck_assert_int_eq(dotlock_read_pid(lockname), 0);
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 1);
	dotlock_release(&l);
	write_lock("99999999999999999999\n", 100);
	ck_assert_int_eq(dotlock_read_pid(lockname), 0);
}
END_TEST

/* The lock is ours only if our temporary file got a second link: a
 * NAME.lock that already has two names (a hard link made by someone
 * else) is someone else's lock, and our temp file stays at one link. */
START_TEST(test_link_count_rule)
{
	struct dotlock_settings set = { 86400, 0 };
	struct dotlock *l = NULL;
	const char *error = NULL;
	char other[1300];

	snprintf(other, sizeof(other), "%s/other", test_dir);
	write_lock("1\n", 0);
	ck_assert_int_eq(link(lockname, other), 0);
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 0);
	ck_assert_int_eq(stray_files(), 0);
	unlink(other);
	unlink(lockname);
	/* A directory in the way is not a lock we can take either. */
	ck_assert_int_eq(mkdir(lockname, 0700), 0);
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 0);
	ck_assert_int_eq(stray_files(), 0);
	rmdir(lockname);
	/* Release leaves a lock that is no longer ours alone. */
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 1);
	{
		/* Another program replaces it (a new inode, made while ours
		 * still exists). */
		int fd = open(other, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		ck_assert_int_ge(fd, 0);
		close(fd);
		ck_assert_int_eq(rename(other, lockname), 0);
	}
	ck_assert_int_eq(dotlock_touch(l), -1);
	dotlock_release(&l);
	ck_assert_int_eq(access(lockname, F_OK), 0);
	ck_assert_ptr_nonnull(strstr(test_log_text(), "was broken by another"));
}
END_TEST

START_TEST(test_no_permission)
{
	struct dotlock_settings set = { 300, 0 };
	struct dotlock *l = NULL;
	const char *error = NULL;
	char sub[1200], m[1300];

	if (geteuid() == 0)
		return;         /* root may write anywhere */
	snprintf(sub, sizeof(sub), "%s/ro", test_dir);
	ck_assert_int_eq(mkdir(sub, 0500), 0);
	snprintf(m, sizeof(m), "%s/alice", sub);
	ck_assert_int_eq(dotlock_take(m, &set, &l, &error), -1);
	ck_assert_ptr_nonnull(error);
	ck_assert_ptr_nonnull(strstr(error, "Permission denied"));
	chmod(sub, 0700);
}
END_TEST

/* Debian's dotlockfile and we exclude each other. */
START_TEST(test_dotlockfile)
{
	struct dotlock_settings set = { 300, 0 };
	struct dotlock *l = NULL;
	const char *error = NULL;
	char cmd[1400];

	if (system("command -v dotlockfile >/dev/null 2>&1") != 0)
		return;
	snprintf(cmd, sizeof(cmd), "dotlockfile -p -r 0 '%s'", lockname);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 0);
	snprintf(cmd, sizeof(cmd), "dotlockfile -u '%s'", lockname);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(dotlock_take(mbox, &set, &l, &error), 1);
	snprintf(cmd, sizeof(cmd), "dotlockfile -r 0 '%s' 2>/dev/null",
		 lockname);
	ck_assert_int_ne(system(cmd), 0);
	dotlock_release(&l);
}
END_TEST

static Suite *
dotlock_suite(void)
{
	Suite *s = suite_create("dotlock");
	TCase *tc = tcase_create("dotlock");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_take_release);
	tcase_add_test(tc, test_busy_bounded);
	tcase_add_test(tc, test_two_processes);
	tcase_add_test(tc, test_stale_dead_holder);
	tcase_add_test(tc, test_stale_live_holder);
	tcase_add_test(tc, test_stale_no_pid);
	tcase_add_test(tc, test_link_count_rule);
	tcase_add_test(tc, test_no_permission);
	tcase_add_test(tc, test_dotlockfile);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(dotlock_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
