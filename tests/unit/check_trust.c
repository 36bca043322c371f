/* check_trust.c: unit tests for trust_check_file (core/trust.c), the
 * check before poplard loads a module, a pass backend or the TLS part:
 * owner, write permission of the file and of its directory, symbolic
 * links, files that are not regular.  The cases that change a file's
 * owner or group run as root only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testdir.h"
#include "trust.h"

#define NOBODY_ID 65534

static char dir[PATH_MAX];      /* test_dir/lib, 0755 */
static char file[PATH_MAX];     /* dir/m.so, 0644 */
static char err[PATH_MAX * 2 + 200];

static void
setup(void)
{
	int fd;

	test_dir_make("trust");
	ck_assert_int_eq(chmod(test_dir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/lib", test_dir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_int_eq(chmod(dir, 0755), 0);
	snprintf(file, sizeof(file), "%s/m.so", dir);
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "x", 1), 1);
	close(fd);
	ck_assert_int_eq(chmod(file, 0644), 0);
	err[0] = '\0';
}

static void
teardown(void)
{
	chmod(dir, 0755);       /* a test may have taken it away */
	test_dir_remove();
}

/* trust_check_file(path) refuses, with a message holding each needle. */
static void
refused(const char *path, const char *needle1, const char *needle2)
{
	ck_assert_int_eq(trust_check_file(path, err, sizeof(err)), -1);
	ck_assert_msg(strncmp(err, path, strlen(path)) == 0 &&
		      strstr(err, ": not loaded: ") != NULL,
		      "message does not start with the path: %s", err);
	ck_assert_msg(strstr(err, needle1) != NULL, "no \"%s\" in: %s",
		      needle1, err);
	if (needle2 != NULL)
		ck_assert_msg(strstr(err, needle2) != NULL, "no \"%s\" in: %s",
			      needle2, err);
}

static void
accepted(const char *path)
{
	ck_assert_msg(trust_check_file(path, err, sizeof(err)) == 0,
		      "%s refused: %s", path, err);
}

START_TEST(test_good_file)
{
	accepted(file);
	ck_assert_int_eq(chmod(file, 0755), 0);
	accepted(file);
	ck_assert_int_eq(chmod(file, 0400), 0);
	accepted(file);
}
END_TEST

START_TEST(test_missing_file_is_left_to_dlopen)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/none.so", dir);
	accepted(path);
}
END_TEST

START_TEST(test_world_writable_file)
{
	ck_assert_int_eq(chmod(file, 0666), 0);
	refused(file, "it is writable by everyone", "(mode 0666)");
	ck_assert_int_eq(chmod(file, 0757), 0);
	refused(file, "writable by everyone", "(mode 0757)");
}
END_TEST

START_TEST(test_world_writable_directory)
{
	ck_assert_int_eq(chmod(dir, 0777), 0);
	refused(file, "its directory", "writable by everyone (mode 0777)");
	ck_assert_msg(strstr(err, dir) != NULL, "directory not named: %s",
		      err);
	/* The sticky bit does not help: anyone may add a file. */
	ck_assert_int_eq(chmod(dir, 01777), 0);
	refused(file, "its directory", "(mode 1777)");
}
END_TEST

START_TEST(test_not_a_regular_file)
{
	char fifo[PATH_MAX + 16];

	refused(dir, "not a regular file", NULL);
	snprintf(fifo, sizeof(fifo), "%s/p.so", dir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	refused(fifo, "not a regular file", NULL);
}
END_TEST

START_TEST(test_symlink_into_a_bad_directory)
{
	char bad[PATH_MAX + 16], target[PATH_MAX + 32], link[PATH_MAX + 16];
	int fd;

	/* dir/l.so -> test_dir/bad/m.so, test_dir/bad writable by everyone. */
	snprintf(bad, sizeof(bad), "%s/bad", test_dir);
	ck_assert_int_eq(mkdir(bad, 0755), 0);
	snprintf(target, sizeof(target), "%s/m.so", bad);
	fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(chmod(target, 0644), 0);
	snprintf(link, sizeof(link), "%s/l.so", dir);
	ck_assert_int_eq(symlink(target, link), 0);
	ck_assert_int_eq(chmod(bad, 0755), 0);
	accepted(link);
	ck_assert_int_eq(chmod(bad, 0777), 0);
	refused(link, "its directory", bad);
	/* And a link to a world-writable file. */
	ck_assert_int_eq(chmod(bad, 0755), 0);
	ck_assert_int_eq(chmod(target, 0666), 0);
	refused(link, "writable by everyone", NULL);
}
END_TEST

START_TEST(test_other_owner)
{
	char want[64];

	if (geteuid() != 0)
		return;         /* only root can give a file away */
	ck_assert_int_eq(chown(file, NOBODY_ID, NOBODY_ID), 0);
	snprintf(want, sizeof(want), "belongs to uid %d", NOBODY_ID);
	refused(file, "it", want);
	ck_assert_int_eq(chown(file, 0, 0), 0);
	accepted(file);
	ck_assert_int_eq(chown(dir, NOBODY_ID, NOBODY_ID), 0);
	refused(file, "its directory", want);
}
END_TEST

START_TEST(test_group_writable)
{
	struct group *gr;

	if (geteuid() != 0)
		return;         /* only root can set any group */
	/* Group nogroup is nobody's private group: not root's. */
	ck_assert_int_eq(chown(file, 0, NOBODY_ID), 0);
	ck_assert_int_eq(chmod(file, 0664), 0);
	refused(file, "writable by group 65534", "(mode 0664)");
	ck_assert_int_eq(chmod(file, 0644), 0);
	accepted(file);
	/* Root's own group, when it lists no other member, is root's
	 * private group: group write is allowed, as with umask 002. */
	gr = getgrgid(0);
	if (gr == NULL || strcmp(gr->gr_name, "root") != 0 ||
	    (gr->gr_mem[0] != NULL && (strcmp(gr->gr_mem[0], "root") != 0 ||
				       gr->gr_mem[1] != NULL)))
		return;
	ck_assert_int_eq(chown(file, 0, 0), 0);
	ck_assert_int_eq(chmod(file, 0664), 0);
	accepted(file);
	ck_assert_int_eq(chmod(dir, 0775), 0);
	ck_assert_int_eq(chown(dir, 0, 0), 0);
	accepted(file);
	ck_assert_int_eq(chown(dir, 0, NOBODY_ID), 0);
	refused(file, "its directory", "writable by group 65534");
}
END_TEST

static Suite *
trust_suite(void)
{
	Suite *s = suite_create("trust");
	TCase *tc = tcase_create("trust_check_file");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_good_file);
	tcase_add_test(tc, test_missing_file_is_left_to_dlopen);
	tcase_add_test(tc, test_world_writable_file);
	tcase_add_test(tc, test_world_writable_directory);
	tcase_add_test(tc, test_not_a_regular_file);
	tcase_add_test(tc, test_symlink_into_a_bad_directory);
	tcase_add_test(tc, test_other_owner);
	tcase_add_test(tc, test_group_writable);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(trust_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
