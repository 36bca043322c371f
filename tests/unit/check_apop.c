/* check_apop.c: unit tests of the APOP timestamp, digest and secrets file
 * rules (modules/apop/apop_core.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "apop_core.h"

static char dir[] = "/tmp/poplar-apop.XXXXXX";
static char path[256];

static void
setup(void)
{
	strcpy(dir, "/tmp/poplar-apop.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secrets", dir);
}

static void
teardown(void)
{
	unlink(path);
	rmdir(dir);
}

static void
write_file(const char *text, mode_t mode)
{
	int fd;

	/* A fresh file each time: an earlier test may have left it 0400,
	 * which only root could open for writing. */
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	ck_assert_int_eq(chmod(path, mode), 0);
}

/* The example of RFC 1939 section 7. */
START_TEST(test_digest_rfc_example)
{
	char hex[33];

	ck_assert_int_eq(apop_digest_hex("<1896.697170952@dbc.mtview.ca.us>",
					 "tanstaaf", 8, hex), 0);
	ck_assert_str_eq(hex, "c4c9334bac560ecc979e58001b3e22fb");
}
END_TEST

START_TEST(test_verify)
{
	const char *ts = "<1896.697170952@dbc.mtview.ca.us>";

	ck_assert_int_eq(apop_verify(ts, "tanstaaf", 8,
				     "c4c9334bac560ecc979e58001b3e22fb"), 1);
	ck_assert_int_eq(apop_verify(ts, "tanstaaf", 8,
				     "C4C9334BAC560ECC979E58001B3E22FB"), 1);
	/* one digit off */
	ck_assert_int_eq(apop_verify(ts, "tanstaaf", 8,
				     "c4c9334bac560ecc979e58001b3e22fc"), 0);
	/* wrong secret, wrong timestamp */
	ck_assert_int_eq(apop_verify(ts, "tanstaaF", 8,
				     "c4c9334bac560ecc979e58001b3e22fb"), 0);
	ck_assert_int_eq(apop_verify("<1896.697170953@dbc.mtview.ca.us>",
				     "tanstaaf", 8,
				     "c4c9334bac560ecc979e58001b3e22fb"), 0);
	/* wrong length, not hex, empty */
	ck_assert_int_eq(apop_verify(ts, "tanstaaf", 8,
				     "c4c9334bac560ecc979e58001b3e22f"), 0);
	ck_assert_int_eq(apop_verify(ts, "tanstaaf", 8,
				     "c4c9334bac560ecc979e58001b3e22fbb"), 0);
	ck_assert_int_eq(apop_verify(ts, "tanstaaf", 8,
				     "g4c9334bac560ecc979e58001b3e22fb"), 0);
	ck_assert_int_eq(apop_verify(ts, "tanstaaf", 8, ""), 0);
}
END_TEST

START_TEST(test_timestamp)
{
	char a[APOP_TIMESTAMP_MAX], b[APOP_TIMESTAMP_MAX], small[20];
	char hex[64], host[64];
	long pid;

	ck_assert_int_eq(apop_timestamp(a, sizeof(a), "mail.example.org", 4242), 0);
	ck_assert_int_eq(apop_timestamp(b, sizeof(b), "mail.example.org", 4242), 0);
	/* Same pid and host, same second: still different (randomness). */
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(sscanf(a, "<%63[0-9a-f].%ld@%63[^>]>", hex, &pid,
				host), 3);
	ck_assert_uint_eq(strlen(hex), 32);
	ck_assert_int_eq(pid, 4242);
	ck_assert_str_eq(host, "mail.example.org");
	ck_assert_int_eq(a[strlen(a) - 1], '>');
	ck_assert_int_eq(apop_timestamp(small, sizeof(small), "h", 1), -1);
}
END_TEST

START_TEST(test_file_modes)
{
	const char *error = NULL;

	write_file("alice:secret\n", 0600);
	ck_assert_int_eq(apop_check_file(path, geteuid(), &error), 0);
	write_file("alice:secret\n", 0400);
	ck_assert_int_eq(apop_check_file(path, geteuid(), &error), 0);
	write_file("alice:secret\n", 0640);
	ck_assert_int_eq(apop_check_file(path, geteuid(), &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "group or others"));
	write_file("alice:secret\n", 0604);
	ck_assert_int_eq(apop_check_file(path, geteuid(), &error), -1);
	write_file("alice:secret\n", 0620);
	ck_assert_int_eq(apop_check_file(path, geteuid(), &error), -1);
	ck_assert_int_eq(apop_check_file(dir, geteuid(), &error), -1);
	ck_assert_str_eq(error, "not a regular file");
	ck_assert_int_eq(apop_check_file("/nonexistent/x", geteuid(), &error),
			 -1);
}
END_TEST

START_TEST(test_file_owner)
{
	const char *error = NULL;
	char secret[64];
	size_t len;

	write_file("alice:secret\n", 0600);
	/* Owned by us: fine.  Claimed to be owned by someone else (we
	 * pretend to run as another uid): refused, unless the owner is
	 * root. */
	ck_assert_int_eq(apop_check_file(path, geteuid() + 1, &error),
			 geteuid() == 0 ? 0 : -1);
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(path, 65534, 65534), 0);
		ck_assert_int_eq(apop_check_file(path, 0, &error), -1);
		ck_assert_ptr_nonnull(strstr(error, "another user"));
		ck_assert_int_eq(apop_lookup(path, 0, "alice", secret,
					     sizeof(secret), &len, &error), -1);
		ck_assert_int_eq(apop_check_file(path, 65534, &error), 0);
	} else {
		ck_assert_ptr_nonnull(strstr(error, "another user"));
	}
}
END_TEST

START_TEST(test_lookup)
{
	const char *error = NULL;
	char secret[64];
	size_t len = 0;

	write_file("# comment\n\nal:short\nalice:s3cr:et with spaces\n"
		   "bob:\ncarol:x\n", 0600);
	ck_assert_int_eq(apop_lookup(path, geteuid(), "alice", secret,
				     sizeof(secret), &len, &error), 1);
	ck_assert_str_eq(secret, "s3cr:et with spaces");
	ck_assert_uint_eq(len, strlen("s3cr:et with spaces"));
	ck_assert_int_eq(apop_lookup(path, geteuid(), "al", secret,
				     sizeof(secret), &len, &error), 1);
	ck_assert_str_eq(secret, "short");
	/* a prefix of a name is not that name */
	ck_assert_int_eq(apop_lookup(path, geteuid(), "alic", secret,
				     sizeof(secret), &len, &error), 0);
	ck_assert_int_eq(apop_lookup(path, geteuid(), "dave", secret,
				     sizeof(secret), &len, &error), 0);
	/* an empty secret is an error in the file */
	ck_assert_int_eq(apop_lookup(path, geteuid(), "bob", secret,
				     sizeof(secret), &len, &error), -1);
	/* a group-readable file is refused at every lookup too */
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(apop_lookup(path, geteuid(), "alice", secret,
				     sizeof(secret), &len, &error), -1);
}
END_TEST

START_TEST(test_lookup_long_line)
{
	const char *error = NULL;
	char secret[64], *text;
	size_t len;

	text = malloc(APOP_LINE_MAX + 64);
	ck_assert_ptr_nonnull(text);
	memset(text, 'x', APOP_LINE_MAX + 10);
	memcpy(text, "alice:", 6);
	strcpy(text + APOP_LINE_MAX + 10, "\n");
	write_file(text, 0600);
	free(text);
	ck_assert_int_eq(apop_lookup(path, geteuid(), "alice", secret,
				     sizeof(secret), &len, &error), -1);
	ck_assert_str_eq(error, "line too long");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("apop");
	TCase *tc = tcase_create("apop");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_digest_rfc_example);
	tcase_add_test(tc, test_verify);
	tcase_add_test(tc, test_timestamp);
	tcase_add_test(tc, test_file_modes);
	tcase_add_test(tc, test_file_owner);
	tcase_add_test(tc, test_lookup);
	tcase_add_test(tc, test_lookup_long_line);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
