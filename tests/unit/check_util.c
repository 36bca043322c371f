/* check_util.c: unit tests for strict number parsing, constant-time
 * compare and string helpers (core/util.c), and the log value escaping
 * of core/log.c. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "util.h"

/* Parse_uint. */

/* s parses to want within [min, max]. */
static void
uint_ok(const char *s, uint64_t min, uint64_t max, uint64_t want)
{
	uint64_t v = 0xdeadbeefULL;

	ck_assert_msg(parse_uint(s, min, max, &v) == 0,
		      "\"%s\" rejected", s);
	ck_assert_msg(v == want, "\"%s\" gave %llu, want %llu", s,
		      (unsigned long long)v, (unsigned long long)want);
}

/* s is refused, and the output is left alone. */
static void
uint_bad(const char *s, uint64_t min, uint64_t max)
{
	uint64_t v = 12345;

	ck_assert_msg(parse_uint(s, min, max, &v) == -1,
		      "\"%s\" accepted", s);
	ck_assert_msg(v == 12345, "\"%s\": output changed on failure", s);
}

START_TEST(test_uint_simple)
{
	uint_ok("0", 0, 10, 0);
	uint_ok("1", 0, 10, 1);
	uint_ok("10", 0, 10, 10);
	uint_ok("42", 0, 100, 42);
	/* leading zeros are digits too */
	uint_ok("007", 0, 10, 7);
}
END_TEST

START_TEST(test_uint_bounds)
{
	uint_ok("4294967295", 0, 0xffffffffULL, 0xffffffffULL);
	uint_bad("4294967296", 0, 0xffffffffULL);
	uint_bad("4294967297", 0, 0xffffffffULL);
	uint_ok("18446744073709551615", 0, UINT64_MAX, UINT64_MAX);
	uint_bad("18446744073709551616", 0, UINT64_MAX);
	uint_bad("18446744073709551620", 0, UINT64_MAX);
	uint_bad("99999999999999999999999", 0, UINT64_MAX);
	/* a wrapped overflow must not sneak under a small max */
	uint_bad("18446744073709551617", 0, 10);
}
END_TEST

START_TEST(test_uint_range)
{
	uint_bad("0", 1, 10);
	uint_ok("1", 1, 10, 1);
	uint_ok("10", 1, 10, 10);
	uint_bad("11", 1, 10);
	uint_ok("5", 5, 5, 5);
	uint_bad("4", 5, 5);
	uint_bad("6", 5, 5);
}
END_TEST

START_TEST(test_uint_junk)
{
	uint64_t v = 7;

	uint_bad("", 0, UINT64_MAX);
	uint_bad("-1", 0, UINT64_MAX);
	uint_bad("-0", 0, UINT64_MAX);
	uint_bad("+1", 0, UINT64_MAX);
	uint_bad(" 1", 0, UINT64_MAX);
	uint_bad("1 ", 0, UINT64_MAX);
	uint_bad("1\t", 0, UINT64_MAX);
	uint_bad("1\n", 0, UINT64_MAX);
	uint_bad("1x", 0, UINT64_MAX);
	uint_bad("0x10", 0, UINT64_MAX);
	uint_bad("1.5", 0, UINT64_MAX);
	uint_bad("1e3", 0, UINT64_MAX);
	uint_bad("\xd9\xa1", 0, UINT64_MAX);   /* ARABIC-INDIC DIGIT ONE */
	ck_assert_int_eq(parse_uint(NULL, 0, 10, &v), -1);
	ck_assert_uint_eq(v, 7);
}
END_TEST

/* Secure_compare / secure_wipe / strlcpy_p. */

START_TEST(test_secure_compare)
{
	const char a[] = "password1";
	char b[sizeof(a)];

	memcpy(b, a, sizeof(a));
	ck_assert_int_eq(secure_compare(a, b, sizeof(a)), 0);
	b[0] = 'P';
	ck_assert_int_ne(secure_compare(a, b, sizeof(a)), 0);
	b[0] = 'p';
	b[sizeof(a) - 2] = '2';
	ck_assert_int_ne(secure_compare(a, b, sizeof(a)), 0);
	/* only len bytes count */
	ck_assert_int_eq(secure_compare(a, b, sizeof(a) - 2), 0);
	ck_assert_int_eq(secure_compare("x", "y", 0), 0);
	/* a difference in one bit of a high byte */
	ck_assert_int_ne(secure_compare("\x80", "\x81", 1), 0);
}
END_TEST

START_TEST(test_secure_wipe)
{
	char buf[16];

	memset(buf, 'A', sizeof(buf));
	secure_wipe(buf + 4, 8);
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_int_eq(buf[i], i >= 4 && i < 12 ? 0 : 'A');
	secure_wipe(NULL, 10);          /* no crash */
}
END_TEST

START_TEST(test_strlcpy)
{
	char buf[8];

	memset(buf, 'Z', sizeof(buf));
	ck_assert_uint_eq(strlcpy_p(buf, "abc", sizeof(buf)), 3);
	ck_assert_str_eq(buf, "abc");
	memset(buf, 'Z', sizeof(buf));
	ck_assert_uint_eq(strlcpy_p(buf, "0123456789", 5), 10);
	ck_assert_str_eq(buf, "0123");
	ck_assert_int_eq(buf[5], 'Z');
	memset(buf, 'Z', sizeof(buf));
	ck_assert_uint_eq(strlcpy_p(buf, "abc", 0), 3);
	ck_assert_int_eq(buf[0], 'Z');
}
END_TEST

/* Log_value. */

/* Escape s into a size-byte area of a larger buffer and check the result
 * and that nothing past size was touched. */
static void
value_is(const char *s, size_t size, const char *want)
{
	char buf[600];
	const char *r;

	ck_assert(size + 16 <= sizeof(buf));
	memset(buf, '#', sizeof(buf));
	r = log_value(buf, size, s);
	ck_assert_ptr_eq(r, buf);
	for (size_t i = size; i < sizeof(buf); i++)
		ck_assert_msg(buf[i] == '#', "byte %zu past the %zu-byte "
			      "buffer written", i, size);
	ck_assert_msg(strlen(buf) < size, "not NUL-terminated in size");
	ck_assert_str_eq(buf, want);
}

START_TEST(test_log_plain)
{
	value_is("alice", 64, "alice");
	value_is("a.b-c_d+e@example.org", 64, "a.b-c_d+e@example.org");
	value_is("192.0.2.1", 64, "192.0.2.1");
	value_is("[::1]:110", 64, "[::1]:110");
	value_is("/var/mail/x", 64, "/var/mail/x");
}
END_TEST

START_TEST(test_log_quoted)
{
	value_is("", 64, "\"\"");
	value_is("a b", 64, "\"a b\"");
	value_is("a\"b", 64, "\"a\\\"b\"");
	value_is("a\\b", 64, "\"a\\\\b\"");
	value_is("\x01", 64, "\"\\x01\"");
	value_is("x\ty", 64, "\"x\\x09y\"");
	value_is("x\r\ny", 64, "\"x\\x0d\\x0ay\"");
	value_is("\x7f", 64, "\"\\x7f\"");
	value_is("\xff", 64, "\"\\xff\"");
	value_is("caf\xc3\xa9", 64, "\"caf\\xc3\\xa9\"");
	/* a forged log line stays on one line and inside the quotes */
	value_is("x reason=ok\nfake", 64, "\"x reason=ok\\x0afake\"");
	value_is("=", 64, "\"=\"");
}
END_TEST

START_TEST(test_log_truncated)
{
	char big[400];

	/* room for the quotes only */
	value_is("a b", 3, "\"\"");
	value_is("a b", 4, "\"a\"");
	value_is("a b", 5, "\"a \"");
	value_is("a b", 6, "\"a b\"");
	/* an escape is never cut in half */
	value_is("\x01\x01", 8, "\"\\x01\"");
	value_is("\x01\x01", 7, "\"\\x01\"");
	value_is("\x01\x01", 6, "\"\"");
	value_is("\\\\", 5, "\"\\\\\"");
	value_is("\\\\", 4, "\"\"");
	/* too small for quotes: empty, never overflowing */
	value_is("a b", 2, "");
	value_is("a b", 1, "");
	value_is("", 2, "");
	/* a plain value is cut, still terminated */
	value_is("abcdef", 4, "abc");

	/* long hostile input against a small buffer */
	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)(i % 3 == 0 ? '"' : i % 3 == 1 ? '\x1b' : 'q');
	big[sizeof(big) - 1] = '\0';
	for (size_t size = 3; size < 80; size++) {
		char buf[100];
		size_t len;

		memset(buf, '#', sizeof(buf));
		log_value(buf, size, big);
		for (size_t i = size; i < sizeof(buf); i++)
			ck_assert_int_eq(buf[i], '#');
		len = strlen(buf);
		ck_assert_uint_lt(len, size);
		ck_assert_uint_ge(len, 2);
		ck_assert_int_eq(buf[0], '"');
		ck_assert_int_eq(buf[len - 1], '"');
		/* at most one escape (4 bytes) short of full */
		ck_assert_uint_ge(len + 4, size);
	}

	/* size 0: nothing written at all */
	{
		char one = '#';

		log_value(&one, 0, "a b");
		ck_assert_int_eq(one, '#');
		log_value(&one, 0, "ab");
		ck_assert_int_eq(one, '#');
	}
}
END_TEST

static Suite *
util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc;

	tc = tcase_create("parse_uint");
	tcase_add_test(tc, test_uint_simple);
	tcase_add_test(tc, test_uint_bounds);
	tcase_add_test(tc, test_uint_range);
	tcase_add_test(tc, test_uint_junk);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_add_test(tc, test_secure_compare);
	tcase_add_test(tc, test_secure_wipe);
	tcase_add_test(tc, test_strlcpy);
	suite_add_tcase(s, tc);

	tc = tcase_create("log_value");
	tcase_add_test(tc, test_log_plain);
	tcase_add_test(tc, test_log_quoted);
	tcase_add_test(tc, test_log_truncated);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(util_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
