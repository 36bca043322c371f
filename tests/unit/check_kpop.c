/* check_kpop.c: unit tests of the KPOP framing rules
 * (modules/kpop/kpop_wire.c): what the first bytes say, length bounds. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "kpop_wire.h"

START_TEST(test_classify)
{
	static const unsigned char sendauth[4] = { 0, 0, 0, 0x13 };
	static const unsigned char v18[4] = { 0, 0, 0, 0x12 };
	static const unsigned char zero[4] = { 0, 0, 0, 0 };
	static const unsigned char big[4] = { 0, 1, 0, 1 };
	static const unsigned char huge[4] = { 0xff, 0xff, 0xff, 0xff };
	static const unsigned char max[4] = { 0, 1, 0, 0 };

	ck_assert_int_eq(kpop_classify_first(sendauth), KPOP_FIRST_SENDAUTH);
	ck_assert_int_eq(kpop_classify_first((const unsigned char *)"QUIT"),
			 KPOP_FIRST_POP3);
	ck_assert_int_eq(kpop_classify_first((const unsigned char *)"CAPA"),
			 KPOP_FIRST_POP3);
	ck_assert_int_eq(kpop_classify_first((const unsigned char *)"user"),
			 KPOP_FIRST_POP3);
	ck_assert_int_eq(kpop_classify_first((const unsigned char *)"TOP "),
			 KPOP_FIRST_POP3);
	ck_assert_int_eq(kpop_classify_first((const unsigned char *)"AUTH"),
			 KPOP_FIRST_AUTH);
	ck_assert_int_eq(kpop_classify_first(v18), KPOP_FIRST_GARBAGE);
	ck_assert_int_eq(kpop_classify_first(zero), KPOP_FIRST_GARBAGE);
	ck_assert_int_eq(kpop_classify_first(max), KPOP_FIRST_GARBAGE);
	ck_assert_int_eq(kpop_classify_first(big), KPOP_FIRST_OVERSIZED);
	ck_assert_int_eq(kpop_classify_first(huge), KPOP_FIRST_OVERSIZED);
	ck_assert_int_eq(kpop_classify_first((const unsigned char *)"\x16\x03\x01\x02"),
			 KPOP_FIRST_OVERSIZED);
	ck_assert_int_eq(kpop_classify_first((const unsigned char *)"GE\x01T"),
			 KPOP_FIRST_OVERSIZED);
	ck_assert_str_eq(kpop_first_describe(KPOP_FIRST_POP3),
			 "plain POP3 client (no Kerberos sendauth)");
}
END_TEST

START_TEST(test_krb4)
{
	ck_assert_int_eq(kpop_is_krb4((const unsigned char *)"V0.1"), 1);
	ck_assert_int_eq(kpop_is_krb4((const unsigned char *)" PLA"), 0);
	ck_assert_int_eq(kpop_is_krb4((const unsigned char *)"V0.2"), 0);
}
END_TEST

START_TEST(test_lengths)
{
	unsigned char b[4];
	uint32_t len = 7;

	kpop_put_len(b, 0x01020304u);
	ck_assert_int_eq(b[0], 1);
	ck_assert_int_eq(b[3], 4);
	ck_assert_uint_eq(kpop_get_len(b), 0x01020304u);

	kpop_put_len(b, 0);
	ck_assert_int_eq(kpop_len_ok(b, KPOP_APREQ_MAX, &len), 0);
	ck_assert_uint_eq(len, 7);
	kpop_put_len(b, 1);
	ck_assert_int_eq(kpop_len_ok(b, KPOP_APREQ_MAX, &len), 1);
	ck_assert_uint_eq(len, 1);
	kpop_put_len(b, KPOP_APREQ_MAX);
	ck_assert_int_eq(kpop_len_ok(b, KPOP_APREQ_MAX, &len), 1);
	kpop_put_len(b, KPOP_APREQ_MAX + 1);
	ck_assert_int_eq(kpop_len_ok(b, KPOP_APREQ_MAX, &len), 0);
	kpop_put_len(b, 0xffffffffu);
	ck_assert_int_eq(kpop_len_ok(b, KPOP_APREQ_MAX, &len), 0);
	kpop_put_len(b, KPOP_APPL_VERSION_MAX + 1);
	ck_assert_int_eq(kpop_len_ok(b, KPOP_APPL_VERSION_MAX, &len), 0);
	/* the version strings are counted with their NUL */
	ck_assert_uint_eq(strlen(KPOP_SENDAUTH_VERSION) + 1,
			  KPOP_SENDAUTH_VERSION_LEN);
	ck_assert_uint_eq(strlen(KPOP_APPL_VERSION) + 1, KPOP_APPL_VERSION_LEN);
}
END_TEST

START_TEST(test_printable)
{
	char out[8];

	kpop_printable((const unsigned char *)"QU\"T\r\n\\x", 8, out,
		       sizeof(out));
	ck_assert_str_eq(out, "QU.T...");
	kpop_printable((const unsigned char *)"ab", 2, out, 1);
	ck_assert_str_eq(out, "");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("kpop");
	TCase *tc = tcase_create("wire");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_classify);
	tcase_add_test(tc, test_krb4);
	tcase_add_test(tc, test_lengths);
	tcase_add_test(tc, test_printable);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
