/* sha256.c: SHA-256 as FIPS 180-4 defines it (sections 4.1.2, 4.2.2,
 * 5.1.1, 5.3.3 and 6.2), in portable C and with the x86-64 SHA
 * extensions.  See sha256.h for the interface. */
#include <string.h>
#include "sha256.h"
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

/* Compress n 64-byte blocks at p into state. */
typedef void sha256_blocks_fn(uint32_t state[8], const unsigned char *p,
			      size_t n);

/* The constants K0..K63 (section 4.2.2): the first 32 bits of the
 * fractional parts of the cube roots of the first 64 primes. */
static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5,
	0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
	0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
	0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
	0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* The initial hash value (section 5.3.3): the first 32 bits of the
 * fractional parts of the square roots of the first 8 primes. */
static const uint32_t sha256_h0[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static inline uint32_t
load_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		(uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void
store_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* ---- portable C ------------------------------------------------------- */

/* The functions of section 4.1.2. */
static inline uint32_t
rotr(uint32_t x, unsigned int n)
{
	return x >> n | x << (32 - n);
}

/* (x & y) ^ (~x & z), in one operation less. */
static inline uint32_t
ch(uint32_t x, uint32_t y, uint32_t z)
{
	return z ^ (x & (y ^ z));
}

static inline uint32_t
maj(uint32_t x, uint32_t y, uint32_t z)
{
	return (x & y) ^ (x & z) ^ (y & z);
}

static inline uint32_t
big_sigma0(uint32_t x)
{
	return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22);
}

static inline uint32_t
big_sigma1(uint32_t x)
{
	return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25);
}

static inline uint32_t
small_sigma0(uint32_t x)
{
	return rotr(x, 7) ^ rotr(x, 18) ^ x >> 3;
}

static inline uint32_t
small_sigma1(uint32_t x)
{
	return rotr(x, 17) ^ rotr(x, 19) ^ x >> 10;
}

/* Round t of section 6.2.2 step 3, with the working variables named as
 * they stand in that round.  Only d and h change: the next round calls
 * them by the next names (h becomes a, a becomes b, ...), so that no
 * variable is copied to the next.  T1 adds what is known early first;
 * e, just computed by the round before, comes last. */
#define ROUND(a, b, c, d, e, f, g, h, t, wt) do { \
	uint32_t t1 = (h) + sha256_k[t] + (wt); \
	t1 += ch(e, f, g); \
	t1 += big_sigma1(e); \
	(d) += t1; \
	(h) = t1 + big_sigma0(a) + maj(a, b, c); \
} while (0)

/* The message schedule (step 1) in 16 words: w[t % 16] holds W(t - 16)
 * until W(t) replaces it. */
#define W_FIRST(t) (w[t])
#define W_NEXT(t) (w[(t) & 15] += small_sigma1(w[((t) - 2) & 15]) + \
	w[((t) - 7) & 15] + small_sigma0(w[((t) - 15) & 15]))

#define ROUNDS8(t, W) do { \
	ROUND(a, b, c, d, e, f, g, h, (t) + 0, W((t) + 0)); \
	ROUND(h, a, b, c, d, e, f, g, (t) + 1, W((t) + 1)); \
	ROUND(g, h, a, b, c, d, e, f, (t) + 2, W((t) + 2)); \
	ROUND(f, g, h, a, b, c, d, e, (t) + 3, W((t) + 3)); \
	ROUND(e, f, g, h, a, b, c, d, (t) + 4, W((t) + 4)); \
	ROUND(d, e, f, g, h, a, b, c, (t) + 5, W((t) + 5)); \
	ROUND(c, d, e, f, g, h, a, b, (t) + 6, W((t) + 6)); \
	ROUND(b, c, d, e, f, g, h, a, (t) + 7, W((t) + 7)); \
} while (0)

static void
blocks_portable(uint32_t state[8], const unsigned char *p, size_t n)
{
	for (; n > 0; n--, p += SHA256_BLOCK_LEN) {
		uint32_t a = state[0], b = state[1], c = state[2],
			d = state[3], e = state[4], f = state[5],
			g = state[6], h = state[7], w[16];
		unsigned int t;

		for (t = 0; t < 16; t++)
			w[t] = load_be32(p + 4 * t);
		for (t = 0; t < 16; t += 8)
			ROUNDS8(t, W_FIRST);
		for (; t < 64; t += 8)
			ROUNDS8(t, W_NEXT);
		state[0] += a;
		state[1] += b;
		state[2] += c;
		state[3] += d;
		state[4] += e;
		state[5] += f;
		state[6] += g;
		state[7] += h;
	}
}

#undef ROUNDS8
#undef W_NEXT
#undef W_FIRST
#undef ROUND

/* ---- x86-64 SHA extensions --------------------------------------------- */

#if defined(__x86_64__)
/* The instructions keep the working variables in two registers, lanes
 * 3..0 holding A B E F and C D G H.  SHA256RNDS2 does two rounds: given
 * C D G H, A B E F and W(t) + K(t), W(t + 1) + K(t + 1) in lanes 0 and
 * 1, it returns the new A B E F; the new C D G H is the old A B E F.
 * SHA256MSG1 and SHA256MSG2 compute the message schedule four words at
 * a time: with W(t - 16) .. W(t - 1) in four registers m0..m3 (lane 0
 * the oldest word), MSG1 of m0 and m1 adds sigma0 of the next word to
 * each word of m0, the words W(t - 7) .. W(t - 4) are added, and MSG2
 * adds sigma1 of the words two before, taken from m3 or from its own
 * result. */
#define SHANI_TARGET __attribute__((target("sha,sse4.1")))

/* W(t) .. W(t + 3) from the previous sixteen. */
SHANI_TARGET static inline __m128i
shani_schedule(__m128i m0, __m128i m1, __m128i m2, __m128i m3)
{
	__m128i x = _mm_sha256msg1_epu32(m0, m1);

	x = _mm_add_epi32(x, _mm_alignr_epi8(m3, m2, 4));
	return _mm_sha256msg2_epu32(x, m3);
}

/* Rounds 4 * i .. 4 * i + 3 with the words in m. */
SHANI_TARGET static inline void
shani_rounds4(__m128i *abef, __m128i *cdgh, __m128i m, unsigned int i)
{
	__m128i wk = _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)
		(const void *)(sha256_k + 4 * i)));

	*cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
	*abef = _mm_sha256rnds2_epu32(*abef, *cdgh,
				      _mm_shuffle_epi32(wk, 0x0e));
}

SHANI_TARGET static void
blocks_shani(uint32_t state[8], const unsigned char *p, size_t n)
{
	/* Each 32-bit word of a block is big-endian. */
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL,
					     0x0405060700010203LL);
	__m128i abcd, efgh, abef, cdgh, tmp;

	/* From lanes 3..0 = D C B A and H G F E. */
	abcd = _mm_loadu_si128((const __m128i *)(const void *)state);
	efgh = _mm_loadu_si128((const __m128i *)(const void *)(state + 4));
	tmp = _mm_shuffle_epi32(abcd, 0xb1);            /* C D A B */
	efgh = _mm_shuffle_epi32(efgh, 0x1b);           /* E F G H */
	abef = _mm_alignr_epi8(tmp, efgh, 8);           /* A B E F */
	cdgh = _mm_blend_epi16(efgh, tmp, 0xf0);        /* C D G H */

	for (; n > 0; n--, p += SHA256_BLOCK_LEN) {
		__m128i abef0 = abef, cdgh0 = cdgh, m0, m1, m2, m3;
		unsigned int i;

		m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)
			(const void *)p), bswap);
		m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)
			(const void *)(p + 16)), bswap);
		m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)
			(const void *)(p + 32)), bswap);
		m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)
			(const void *)(p + 48)), bswap);
		shani_rounds4(&abef, &cdgh, m0, 0);
		shani_rounds4(&abef, &cdgh, m1, 1);
		shani_rounds4(&abef, &cdgh, m2, 2);
		shani_rounds4(&abef, &cdgh, m3, 3);
		for (i = 4; i < 16; i += 4) {
			m0 = shani_schedule(m0, m1, m2, m3);
			shani_rounds4(&abef, &cdgh, m0, i);
			m1 = shani_schedule(m1, m2, m3, m0);
			shani_rounds4(&abef, &cdgh, m1, i + 1);
			m2 = shani_schedule(m2, m3, m0, m1);
			shani_rounds4(&abef, &cdgh, m2, i + 2);
			m3 = shani_schedule(m3, m0, m1, m2);
			shani_rounds4(&abef, &cdgh, m3, i + 3);
		}
		abef = _mm_add_epi32(abef, abef0);
		cdgh = _mm_add_epi32(cdgh, cdgh0);
	}

	/* Back to D C B A and H G F E. */
	tmp = _mm_shuffle_epi32(abef, 0x1b);            /* F E B A */
	cdgh = _mm_shuffle_epi32(cdgh, 0xb1);           /* D C H G */
	abcd = _mm_blend_epi16(tmp, cdgh, 0xf0);        /* D C B A */
	efgh = _mm_alignr_epi8(cdgh, tmp, 8);           /* H G F E */
	_mm_storeu_si128((__m128i *)(void *)state, abcd);
	_mm_storeu_si128((__m128i *)(void *)(state + 4), efgh);
}

#undef SHANI_TARGET

/* Whether the CPU has the SHA extensions (CPUID leaf 7, EBX bit 29) and
 * SSSE3 and SSE4.1 (leaf 1, ECX bits 9 and 19), which the code above
 * uses too.  CPUID is asked directly: not every compiler's
 * __builtin_cpu_supports knows "sha". */
static bool
cpu_has_shani(void)
{
	unsigned int eax, ebx, ecx, edx;

	if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0 ||
	    (ecx & (1u << 9)) == 0 || (ecx & (1u << 19)) == 0)
		return false;
	if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0)
		return false;
	return (ebx & (1u << 29)) != 0;
}
#endif

/* ---- selection and the interface ------------------------------------------ */

static sha256_blocks_fn *sha256_blocks = blocks_portable;

/* The fastest way the CPU allows. */
static sha256_blocks_fn *
best_blocks(void)
{
#if defined(__x86_64__)
	if (cpu_has_shani())
		return blocks_shani;
#endif
	return blocks_portable;
}

/* Chosen once, before main() and so before any thread or session
 * process exists. */
__attribute__((constructor)) static void
sha256_select(void)
{
	sha256_blocks = best_blocks();
}

void
sha256_force_portable(bool on)
{
	sha256_blocks = on ? blocks_portable : best_blocks();
}

const char *
sha256_implementation(void)
{
#if defined(__x86_64__)
	if (sha256_blocks == blocks_shani)
		return "sha-ni";
#endif
	return "portable";
}

void
sha256_init(struct sha256_ctx *ctx)
{
	memcpy(ctx->state, sha256_h0, sizeof(ctx->state));
	ctx->len = 0;
}

void
sha256_update(struct sha256_ctx *ctx, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t fill = (size_t)(ctx->len % SHA256_BLOCK_LEN);

	if (len == 0)
		return;
	ctx->len += len;
	if (fill > 0) {
		size_t n = SHA256_BLOCK_LEN - fill;

		if (len < n) {
			memcpy(ctx->buf + fill, p, len);
			return;
		}
		memcpy(ctx->buf + fill, p, n);
		sha256_blocks(ctx->state, ctx->buf, 1);
		p += n;
		len -= n;
	}
	/* Whole blocks straight from the caller's bytes. */
	if (len >= SHA256_BLOCK_LEN) {
		sha256_blocks(ctx->state, p, len / SHA256_BLOCK_LEN);
		p += len - len % SHA256_BLOCK_LEN;
		len %= SHA256_BLOCK_LEN;
	}
	if (len > 0)
		memcpy(ctx->buf, p, len);
}

void
sha256_final(struct sha256_ctx *ctx, unsigned char out[SHA256_DIGEST_LEN])
{
	size_t fill = (size_t)(ctx->len % SHA256_BLOCK_LEN);
	uint64_t bits = ctx->len * 8;
	int i;

	/* Padding (section 5.1.1): a 1 bit, zeros up to 56 bytes in the
	 * last block, the length in bits as 64 bits big-endian. */
	ctx->buf[fill++] = 0x80;
	if (fill > SHA256_BLOCK_LEN - 8) {
		memset(ctx->buf + fill, 0, SHA256_BLOCK_LEN - fill);
		sha256_blocks(ctx->state, ctx->buf, 1);
		fill = 0;
	}
	memset(ctx->buf + fill, 0, SHA256_BLOCK_LEN - 8 - fill);
	store_be32(ctx->buf + SHA256_BLOCK_LEN - 8, (uint32_t)(bits >> 32));
	store_be32(ctx->buf + SHA256_BLOCK_LEN - 4, (uint32_t)bits);
	sha256_blocks(ctx->state, ctx->buf, 1);
	for (i = 0; i < 8; i++)
		store_be32(out + 4 * i, ctx->state[i]);
}

void
sha256(const void *data, size_t len, unsigned char out[SHA256_DIGEST_LEN])
{
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, data, len);
	sha256_final(&ctx, out);
}
