/* check_sha256.c: unit tests for SHA-256 (core/sha256.c): the FIPS 180-4
 * example vectors, and agreement with OpenSSL's SHA-256 on random input
 * fed in random pieces.  Each test runs twice: _i = 0 with the code the
 * CPU allows (the SHA extensions on an x86-64 CPU that has them), _i = 1
 * with the portable code. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "sha256.h"

#define MAX_LEN 4096

/* The code for run _i, checked to be the one meant.  The CPU is asked
 * through the compiler, not through sha256.c, so that a wrong choice
 * there cannot go unnoticed (GCC knows "sha"; clang 14 does not). */
static void
use_impl(int i)
{
	sha256_force_portable(i == 1);
	if (i == 1) {
		ck_assert_str_eq(sha256_implementation(), "portable");
		return;
	}
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
	__builtin_cpu_init();
	ck_assert_str_eq(sha256_implementation(),
			 __builtin_cpu_supports("sha") ? "sha-ni" :
			 "portable");
#endif
}

static void
to_hex(const unsigned char md[SHA256_DIGEST_LEN],
       char out[2 * SHA256_DIGEST_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < SHA256_DIGEST_LEN; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 0xf];
	}
	out[2 * SHA256_DIGEST_LEN] = '\0';
}

/* data[0..len) hashed in one call and fed in pieces of step bytes (the
 * last one shorter) must both give the digest written in hex. */
static void
digest_is(const void *data, size_t len, size_t step, const char *want)
{
	const unsigned char *p = data;
	unsigned char md[SHA256_DIGEST_LEN];
	char got[2 * SHA256_DIGEST_LEN + 1];
	struct sha256_ctx ctx;

	sha256(data, len, md);
	to_hex(md, got);
	ck_assert_str_eq(got, want);

	sha256_init(&ctx);
	for (size_t off = 0; off < len; off += step)
		sha256_update(&ctx, p + off, len - off < step ? len - off :
			      step);
	sha256_final(&ctx, md);
	to_hex(md, got);
	ck_assert_str_eq(got, want);
}

/* ---- FIPS 180-4 examples (NIST's SHA-256 example computations) -------- */

START_TEST(test_abc)
{
	use_impl(_i);
	digest_is("abc", 3, 1,
		  "ba7816bf8f01cfea414140de5dae2223"
		  "b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(test_two_blocks)
{
	static const char msg[] =
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

	use_impl(_i);
	ck_assert_uint_eq(strlen(msg), 56);
	digest_is(msg, 56, 5,
		  "248d6a61d20638b8e5c026930c3e6039"
		  "a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

START_TEST(test_empty)
{
	static const char want[] =
		"e3b0c44298fc1c149afbf4c8996fb924"
		"27ae41e4649b934ca495991b7852b855";
	unsigned char md[SHA256_DIGEST_LEN];
	char got[2 * SHA256_DIGEST_LEN + 1];
	struct sha256_ctx ctx;

	use_impl(_i);
	digest_is("", 0, 1, want);
	sha256(NULL, 0, md);
	to_hex(md, got);
	ck_assert_str_eq(got, want);
	sha256_init(&ctx);
	sha256_update(&ctx, NULL, 0);
	sha256_final(&ctx, md);
	to_hex(md, got);
	ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_million_a)
{
	static const char want[] =
		"cdc76e5c9914fb9281a1c7e284d73e67"
		"f1809a48a497200e046d39ccc7112cd0";
	char *a = malloc(1000000);

	use_impl(_i);
	ck_assert_ptr_nonnull(a);
	memset(a, 'a', 1000000);
	digest_is(a, 1000000, 1000, want);
	digest_is(a, 1000000, 997, want);
	free(a);
}
END_TEST

/* A context started again gives the same digest as a fresh one. */
START_TEST(test_restart)
{
	unsigned char md[SHA256_DIGEST_LEN];
	char got[2 * SHA256_DIGEST_LEN + 1];
	struct sha256_ctx ctx;

	use_impl(_i);
	sha256_init(&ctx);
	sha256_update(&ctx, "something else, 37 bytes in all: xyz", 37);
	sha256_final(&ctx, md);
	sha256_init(&ctx);
	sha256_update(&ctx, "abc", 3);
	sha256_final(&ctx, md);
	to_hex(md, got);
	ck_assert_str_eq(got, "ba7816bf8f01cfea414140de5dae2223"
			 "b00361a396177a9cb410ff61f20015ad");
}
END_TEST

/* ---- against OpenSSL -------------------------------------------------- */

/* xorshift64*: the same sequence on every run and platform. */
static uint64_t rng_state;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static void
openssl_sha256(const void *data, size_t len,
	       unsigned char md[SHA256_DIGEST_LEN])
{
	unsigned int mdlen = 0;

	ck_assert(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) == 1);
	ck_assert_uint_eq(mdlen, SHA256_DIGEST_LEN);
}

/* Every length around the padding's edges (55, 56 and 64 bytes in the
 * last block) over several blocks, in one call and byte by byte. */
START_TEST(test_lengths)
{
	unsigned char buf[4 * SHA256_BLOCK_LEN + 1], md[SHA256_DIGEST_LEN],
		ref[SHA256_DIGEST_LEN];

	use_impl(_i);
	rng_state = 0x0123456789abcdefULL;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)rng();
	for (size_t len = 0; len <= sizeof(buf); len++) {
		struct sha256_ctx ctx;

		openssl_sha256(buf, len, ref);
		sha256(buf, len, md);
		ck_assert_msg(memcmp(md, ref, sizeof(md)) == 0,
			      "one call, length %zu", len);
		sha256_init(&ctx);
		for (size_t k = 0; k < len; k++)
			sha256_update(&ctx, buf + k, 1);
		sha256_final(&ctx, md);
		ck_assert_msg(memcmp(md, ref, sizeof(md)) == 0,
			      "byte by byte, length %zu", len);
	}
}
END_TEST

/* Random lengths 0..MAX_LEN of random bytes, fed in random pieces, empty
 * ones included: small pieces, pieces around the block size, and large
 * ones that are mostly whole blocks from the caller's buffer. */
START_TEST(test_random_pieces)
{
	static const size_t piece_max[] = { 1, 8, 63, 65, 130, 1000,
					    MAX_LEN + 1 };
	unsigned char *buf = malloc(MAX_LEN), md[SHA256_DIGEST_LEN],
		ref[SHA256_DIGEST_LEN];

	use_impl(_i);
	ck_assert_ptr_nonnull(buf);
	rng_state = 0x9e3779b97f4a7c15ULL;
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = (size_t)(rng() % (MAX_LEN + 1));
		size_t pmax = piece_max[rng() % (sizeof(piece_max) /
						 sizeof(piece_max[0]))];
		struct sha256_ctx ctx;
		size_t off = 0, pieces = 0;

		for (size_t i = 0; i < len; i++)
			buf[i] = (unsigned char)(rng() >> 56);
		openssl_sha256(buf, len, ref);
		sha256_init(&ctx);
		while (off < len) {
			size_t n = (size_t)(rng() % (pmax + 1));

			if (n > len - off)
				n = len - off;
			sha256_update(&ctx, buf + off, n);
			off += n;
			pieces++;
		}
		sha256_final(&ctx, md);
		ck_assert_msg(memcmp(md, ref, sizeof(md)) == 0,
			      "iteration %d: length %zu in %zu pieces of at "
			      "most %zu", iter, len, pieces, pmax);
		sha256(buf, len, md);
		ck_assert_msg(memcmp(md, ref, sizeof(md)) == 0,
			      "iteration %d: length %zu in one call", iter,
			      len);
	}
	free(buf);
}
END_TEST

/* Forcing the portable code and letting go of it again. */
START_TEST(test_force)
{
	const char *best;

	sha256_force_portable(false);
	best = sha256_implementation();
	sha256_force_portable(true);
	ck_assert_str_eq(sha256_implementation(), "portable");
	sha256_force_portable(false);
	ck_assert_str_eq(sha256_implementation(), best);
}
END_TEST

static Suite *
sha256_suite(void)
{
	Suite *s = suite_create("sha256");
	TCase *tc;

	tc = tcase_create("fips");
	tcase_add_loop_test(tc, test_abc, 0, 2);
	tcase_add_loop_test(tc, test_two_blocks, 0, 2);
	tcase_add_loop_test(tc, test_empty, 0, 2);
	tcase_add_loop_test(tc, test_million_a, 0, 2);
	tcase_add_loop_test(tc, test_restart, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("openssl");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_lengths, 0, 2);
	tcase_add_loop_test(tc, test_random_pieces, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("select");
	tcase_add_test(tc, test_force);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sha256_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
