/* check_sasl.c: unit tests of the sasl module's rules that need no Cyrus
 * SASL (modules/sasl/sasl_core.c): strict base64, the mechanism filter,
 * mechanism policy and the identity-to-user rule. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "poplar-module.h"
#include "sasl_core.h"

static void
decode_ok(const char *in, const char *want, size_t wantlen)
{
	unsigned char out[64];
	size_t len = 99;

	ck_assert_msg(saslc_b64_decode(in, strlen(in), out, sizeof(out),
				       &len) == 0, "decode of '%s'", in);
	ck_assert_uint_eq(len, wantlen);
	ck_assert(memcmp(out, want, wantlen) == 0);
}

static void
decode_bad(const char *in)
{
	unsigned char out[64];
	size_t len = 99;

	ck_assert_msg(saslc_b64_decode(in, strlen(in), out, sizeof(out),
				       &len) < 0, "'%s' must be refused", in);
	ck_assert_uint_eq(len, 0);
}

/* RFC 4648 section 10 test vectors, and PLAIN's NUL bytes. */
START_TEST(test_b64_decode_vectors)
{
	decode_ok("", "", 0);
	decode_ok("Zg==", "f", 1);
	decode_ok("Zm8=", "fo", 2);
	decode_ok("Zm9v", "foo", 3);
	decode_ok("Zm9vYg==", "foob", 4);
	decode_ok("Zm9vYmE=", "fooba", 5);
	decode_ok("Zm9vYmFy", "foobar", 6);
	decode_ok("AGFsaWNlAHNlY3JldA==", "\0alice\0secret", 13);
	decode_ok("+/+/", "\xfb\xff\xbf", 3);
}
END_TEST

START_TEST(test_b64_decode_strict)
{
	decode_bad("Zg");               /* no padding */
	decode_bad("Zg=");
	decode_bad("Zg===");
	decode_bad("=Zg=");
	decode_bad("Z===");             /* one digit is not a byte */
	decode_bad("Zg==Zg==");         /* padding in the middle */
	decode_bad("Zh==");             /* hidden bits set */
	decode_bad("Zm9=");
	decode_bad("Zm9v Yg==");        /* whitespace */
	decode_bad("Zm9v\r\n");
	decode_bad("Zm9-");             /* base64url alphabet */
	decode_bad("Zm9_");
	decode_bad("*");
	decode_bad("=");
	decode_bad("====");
	decode_bad("Zm\0v");
}
END_TEST

START_TEST(test_b64_decode_bound)
{
	unsigned char out[3];
	size_t len;

	ck_assert_int_eq(saslc_b64_decode("Zm9v", 4, out, 3, &len), 0);
	ck_assert_int_lt(saslc_b64_decode("Zm9vYg==", 8, out, 3, &len), 0);
	ck_assert_int_lt(saslc_b64_decode("Zm9v", 4, out, 2, &len), 0);
	ck_assert_int_lt(saslc_b64_decode("Zg==", 4, out, 0, &len), 0);
}
END_TEST

START_TEST(test_b64_encode)
{
	char out[32];

	ck_assert_int_eq(saslc_b64_encode((const unsigned char *)"", 0, out,
					  sizeof(out)), 0);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(saslc_b64_encode((const unsigned char *)"f", 1, out,
					  sizeof(out)), 4);
	ck_assert_str_eq(out, "Zg==");
	ck_assert_int_eq(saslc_b64_encode((const unsigned char *)"fo", 2, out,
					  sizeof(out)), 4);
	ck_assert_str_eq(out, "Zm8=");
	ck_assert_int_eq(saslc_b64_encode((const unsigned char *)"foobar", 6,
					  out, sizeof(out)), 8);
	ck_assert_str_eq(out, "Zm9vYmFy");
	/* Exactly enough room, and one byte short (the NUL). */
	ck_assert_int_eq(saslc_b64_encode((const unsigned char *)"foo", 3,
					  out, 5), 4);
	ck_assert_int_lt(saslc_b64_encode((const unsigned char *)"foo", 3,
					  out, 4), 0);
	ck_assert_int_eq(saslc_b64_encode((const unsigned char *)"", 0, out,
					  1), 0);
	ck_assert_int_lt(saslc_b64_encode((const unsigned char *)"", 0, out,
					  0), 0);
}
END_TEST

/* Every byte value survives encode + decode. */
START_TEST(test_b64_round_trip)
{
	unsigned char in[256], back[256];
	char enc[400];
	size_t len;

	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)(255 - i);
	for (size_t n = 0; n <= sizeof(in); n += 1 + n / 3) {
		long e = saslc_b64_encode(in, n, enc, sizeof(enc));

		ck_assert_int_ge(e, 0);
		ck_assert_int_eq(saslc_b64_decode(enc, (size_t)e, back,
						  sizeof(back), &len), 0);
		ck_assert_uint_eq(len, n);
		ck_assert(memcmp(in, back, n) == 0);
	}
}
END_TEST

START_TEST(test_filter_plaintext)
{
	char out[SASL_MECHLIST_MAX + 1];
	const char *cyrus = "SCRAM-SHA-256 PLAIN LOGIN CRAM-MD5 GSSAPI "
			    "ANONYMOUS EXTERNAL";

	ck_assert_uint_eq(saslc_filter_mechs(cyrus, true, out, sizeof(out)),
			  6);
	ck_assert_str_eq(out, "GSSAPI CRAM-MD5 SCRAM-SHA-256 PLAIN LOGIN "
			 "EXTERNAL");
	ck_assert_uint_eq(saslc_filter_mechs(cyrus, false, out, sizeof(out)),
			  4);
	ck_assert_str_eq(out, "GSSAPI CRAM-MD5 SCRAM-SHA-256 EXTERNAL");
}
END_TEST

START_TEST(test_filter_odd_input)
{
	char out[SASL_MECHLIST_MAX + 1], small[12];

	ck_assert_uint_eq(saslc_filter_mechs(NULL, true, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
	ck_assert_uint_eq(saslc_filter_mechs("", true, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
	/* Invalid names (lower case, too long, odd characters) and
	 * duplicates are dropped; extra spaces do not matter. */
	ck_assert_uint_eq(saslc_filter_mechs("  plain  CRAM-MD5 X.Y "
					     "ABCDEFGHIJKLMNOPQRSTU "
					     "ABCDEFGHIJKLMNOPQRST CRAM-MD5 ",
					     true, out, sizeof(out)), 2);
	ck_assert_str_eq(out, "CRAM-MD5 ABCDEFGHIJKLMNOPQRST");
	/* What does not fit is left out, never cut. */
	ck_assert_uint_eq(saslc_filter_mechs("DIGEST-MD5 PLAIN LOGIN", true,
					     small, sizeof(small)), 1);
	ck_assert_str_eq(small, "DIGEST-MD5");
	ck_assert_uint_eq(saslc_filter_mechs("PLAIN", true, small, 0), 0);
}
END_TEST

START_TEST(test_mech_in_list)
{
	char up[SASL_MECH_NAME_MAX + 1];
	const char *list = "GSSAPI CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256";

	ck_assert(saslc_mech_in_list(list, "cram-md5", up));
	ck_assert_str_eq(up, "CRAM-MD5");
	ck_assert(saslc_mech_in_list(list, "SCRAM-SHA-1", NULL));
	ck_assert(saslc_mech_in_list(list, "scram-sha-256", NULL));
	ck_assert(!saslc_mech_in_list(list, "SCRAM-SHA", NULL));
	ck_assert(!saslc_mech_in_list(list, "SCRAM-SHA-25", NULL));
	ck_assert(!saslc_mech_in_list(list, "PLAIN", NULL));
	ck_assert(!saslc_mech_in_list(list, "", NULL));
	ck_assert(!saslc_mech_in_list(list, "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
				      up));
	ck_assert(!saslc_mech_in_list("", "PLAIN", NULL));
}
END_TEST

START_TEST(test_policy)
{
	ck_assert_uint_eq(saslc_mech_policy("PLAIN"), POPLAR_POLICY_PLAINTEXT);
	ck_assert_uint_eq(saslc_mech_policy("LOGIN"), POPLAR_POLICY_PLAINTEXT);
	ck_assert_uint_eq(saslc_mech_policy("CRAM-MD5"),
			  POPLAR_POLICY_GUESSABLE | POPLAR_POLICY_REPLAY_SAFE);
	ck_assert_uint_eq(saslc_mech_policy("DIGEST-MD5"),
			  POPLAR_POLICY_GUESSABLE | POPLAR_POLICY_REPLAY_SAFE);
	ck_assert_uint_eq(saslc_mech_policy("SCRAM-SHA-256"),
			  POPLAR_POLICY_REPLAY_SAFE | POPLAR_POLICY_MUTUAL);
	ck_assert_uint_eq(saslc_mech_policy("GSSAPI"),
			  POPLAR_POLICY_REPLAY_SAFE | POPLAR_POLICY_MUTUAL);
	ck_assert_uint_eq(saslc_mech_policy("EXTERNAL"),
			  POPLAR_POLICY_REPLAY_SAFE | POPLAR_POLICY_MUTUAL);
	ck_assert_uint_eq(saslc_mech_policy("OTP"), 0);
	ck_assert(saslc_mech_is_plaintext("plain"));
	ck_assert(!saslc_mech_is_plaintext("CRAM-MD5"));
}
END_TEST

START_TEST(test_local_user)
{
	char u[POPLAR_USER_MAX + 1];

	ck_assert_int_eq(saslc_local_user("alice", NULL, u, sizeof(u)), 0);
	ck_assert_str_eq(u, "alice");
	ck_assert_int_eq(saslc_local_user("alice@Example.ORG", "example.org",
					  u, sizeof(u)), 0);
	ck_assert_str_eq(u, "alice");
	/* Another realm, or a realm when none is configured. */
	ck_assert_int_lt(saslc_local_user("alice@other.org", "example.org",
					  u, sizeof(u)), 0);
	ck_assert_str_eq(u, "");
	ck_assert_int_lt(saslc_local_user("alice@example.org", NULL, u,
					  sizeof(u)), 0);
	ck_assert_int_lt(saslc_local_user("a@b@example.org", "example.org",
					  u, sizeof(u)), 0);
	/* Not a local user name. */
	ck_assert_int_lt(saslc_local_user("", NULL, u, sizeof(u)), 0);
	ck_assert_int_lt(saslc_local_user("@example.org", "example.org", u,
					  sizeof(u)), 0);
	ck_assert_int_lt(saslc_local_user("al ice", NULL, u, sizeof(u)), 0);
	ck_assert_int_lt(saslc_local_user("../root", NULL, u, sizeof(u)), 0);
	ck_assert_int_lt(saslc_local_user("a/b", NULL, u, sizeof(u)), 0);
	ck_assert_int_lt(saslc_local_user("a:b", NULL, u, sizeof(u)), 0);
	ck_assert_int_lt(saslc_local_user("-x", NULL, u, sizeof(u)), 0);
	ck_assert_int_lt(saslc_local_user("a\tb", NULL, u, sizeof(u)), 0);
	ck_assert_int_lt(saslc_local_user("caf\xc3\xa9", NULL, u, sizeof(u)),
			 0);
	/* Length: size-1 fits, size does not. */
	ck_assert_int_eq(saslc_local_user("abcd", NULL, u, 5), 0);
	ck_assert_int_lt(saslc_local_user("abcde", NULL, u, 5), 0);
}
END_TEST

static Suite *
sasl_suite(void)
{
	Suite *s = suite_create("sasl");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_b64_decode_vectors);
	tcase_add_test(tc, test_b64_decode_strict);
	tcase_add_test(tc, test_b64_decode_bound);
	tcase_add_test(tc, test_b64_encode);
	tcase_add_test(tc, test_b64_round_trip);
	tcase_add_test(tc, test_filter_plaintext);
	tcase_add_test(tc, test_filter_odd_input);
	tcase_add_test(tc, test_mech_in_list);
	tcase_add_test(tc, test_policy);
	tcase_add_test(tc, test_local_user);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sasl_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
