/* sha256.h: SHA-256 (FIPS 180-4), for the digests the maildrop drivers
 * keep: Maildir UIDLs made from file names, mbox message digests and
 * journal checksums.
 *
 * The digests are stored in state files, so they must never change:
 * this is plain SHA-256, the same bytes any other implementation gives.
 * Two ways of computing it give the same results: portable C, and on
 * x86-64 the SHA extensions when the CPU has them, chosen once when the
 * program starts.  Nothing here allocates or fails. */
#ifndef POPLAR_SHA256_H
#define POPLAR_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_BLOCK_LEN 64

struct sha256_ctx {
	uint32_t state[8];              /* H0..H7 */
	uint64_t len;                   /* bytes fed so far */
	unsigned char buf[SHA256_BLOCK_LEN]; /* the last len % 64 of them */
};

/* Start a digest.  A context may be started again after sha256_final. */
void sha256_init(struct sha256_ctx *ctx);
/* Feed len bytes at data (which may be NULL when len is 0). */
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len);
/* The digest of everything fed since sha256_init, into out.  The
 * context must be started again before it is fed again. */
void sha256_final(struct sha256_ctx *ctx,
		  unsigned char out[SHA256_DIGEST_LEN]);
/* The digest of len bytes at data, in one call. */
void sha256(const void *data, size_t len,
	    unsigned char out[SHA256_DIGEST_LEN]);

/* For tests, which must check both ways of computing on a CPU that has
 * the SHA extensions: true makes every later digest use the portable
 * code, false goes back to what the CPU allows.  Not for use while
 * another thread computes a digest. */
void sha256_force_portable(bool on);
/* The way digests are computed now: "sha-ni" or "portable". */
const char *sha256_implementation(void);

#endif
