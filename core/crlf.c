/* crlf.c: CRLF conversion, byte-stuffing and sizes of messages (RFC 1939
 * section 3 and the RETR/TOP rules).  See crlf.h for the definition. */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include "crlf.h"

void
crlf_count_init(struct crlf_count *c)
{
	memset(c, 0, sizeof(*c));
	c->last_lf = true;
	c->empty = true;
}

#if defined(__GNUC__)
/* Sixteen bytes at a time with the compiler's generic vectors (SSE2 on
 * x86-64, NEON on arm64, plain words elsewhere).  Each lane of acc
 * counts bare LFs at its position; it gains at most one per step, so it
 * is emptied into the total every 255 steps, before it could wrap. */
typedef unsigned char crlf_u8x16 __attribute__((vector_size(16)));

static uint64_t
bare_lfs_vec(const unsigned char *p, size_t *i_r, size_t len)
{
	const crlf_u8x16 lf = {
		'\n', '\n', '\n', '\n', '\n', '\n', '\n', '\n',
		'\n', '\n', '\n', '\n', '\n', '\n', '\n', '\n' };
	const crlf_u8x16 cr = {
		'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r',
		'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r' };
	const crlf_u8x16 one = {
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	uint64_t n = 0;
	size_t i = *i_r;

	/* i >= 1 throughout: p[i - 1] is the byte before each lane. */
	while (len - i >= 16) {
		crlf_u8x16 acc = { 0 };
		unsigned int steps = 0;

		for (; len - i >= 16 && steps < 255; i += 16, steps++) {
			crlf_u8x16 cur, prev;

			memcpy(&cur, p + i, 16);
			memcpy(&prev, p + i - 1, 16);
			acc += (crlf_u8x16)((cur == lf) & (prev != cr)) & one;
		}
		for (int k = 0; k < 16; k++)
			n += acc[k];
	}
	*i_r = i;
	return n;
}
#endif

void
crlf_count_feed(struct crlf_count *c, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t bare = 0;
	size_t i = 1;

	if (len == 0)
		return;
	c->size += len;
	c->empty = false;
	/* A size is the length plus one for each LF without a CR before
	 * it; the CR of the first byte may be the previous chunk's. */
	if (p[0] == '\n' && !c->last_cr)
		bare++;
#if defined(__GNUC__)
	bare += bare_lfs_vec(p, &i, len);
#endif
	for (; i < len; i++)
		if (p[i] == '\n' && p[i - 1] != '\r')
			bare++;
	c->size += bare;
	c->last_cr = p[len - 1] == '\r';
	c->last_lf = p[len - 1] == '\n';
}

uint64_t
crlf_count_finish(const struct crlf_count *c)
{
	if (c->empty || c->last_lf)
		return c->size;
	return c->size + 2;
}

void
crlf_stuff_init(struct crlf_stuff *st, long body_lines)
{
	memset(st, 0, sizeof(*st));
	st->at_line_start = true;
	st->line_empty = true;
	st->body_lines = body_lines;
}

/* Copy in[0..len) up to its first LF (not included) to out and return
 * how many bytes that is.  With SSE2 (every x86-64), sixteen bytes at a
 * time: each chunk is stored whole before its LF is looked for, so up
 * to 15 bytes past the run may be written in out.  That stays within the
 * 2 * len + 1 bytes crlf_stuff_feed's caller provides: a chunk is only
 * stored while 16 bytes of input remain, and the output so far is at
 * most twice the input so far. */
static inline size_t
copy_to_lf(unsigned char *out, const unsigned char *in, size_t len)
{
	const unsigned char *lf;
	size_t k = 0, run;

#if defined(__SSE2__)
	const __m128i nl = _mm_set1_epi8('\n');

	for (; len - k >= 16; k += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)
					    (in + k));
		unsigned int m = (unsigned int)_mm_movemask_epi8(
			_mm_cmpeq_epi8(v, nl));

		_mm_storeu_si128((__m128i *)(void *)(out + k), v);
		if (m != 0)
			return k + (size_t)__builtin_ctz(m);
	}
#endif
	lf = memchr(in + k, '\n', len - k);
	run = (lf != NULL ? (size_t)(lf - in) : len) - k;
	memcpy(out + k, in + k, run);
	return k + run;
}

/* A line ended (line_empty: it had no bytes but CRs): apply the TOP
 * limit. */
static void
line_end(struct crlf_stuff *st, bool line_empty)
{
	if (!st->in_body) {
		if (line_empty) {
			st->in_body = true;
			if (st->body_lines == 0)
				st->done = true;
		}
	} else if (st->body_lines > 0) {
		if (--st->body_lines == 0)
			st->done = true;
	}
}

size_t
crlf_stuff_feed(struct crlf_stuff *st, const unsigned char *in, size_t len,
		unsigned char *out)
{
	/* The per-line state is kept in locals while converting: out is
	 * bytes, which may alias st, so its fields would otherwise be
	 * stored and loaded again around every write. */
	unsigned char *o = out;
	bool last_cr = st->last_cr, at_line_start = st->at_line_start;
	bool line_empty = st->line_empty;
	uint64_t sent = st->sent;
	size_t i = 0;

	if (st->done)
		return 0;
	while (i < len) {
		unsigned char c = in[i];

		if (at_line_start && c == '.')
			*o++ = '.';
		/* Copy a run of ordinary bytes up to the next LF at once. */
		if (c != '\n') {
			size_t run = copy_to_lf(o, in + i, len - i);

			o += run;
			sent += run;
			if (line_empty) {
				for (size_t k = 0; k < run; k++)
					if (in[i + k] != '\r') {
						line_empty = false;
						break;
					}
			}
			last_cr = in[i + run - 1] == '\r';
			at_line_start = false;
			i += run;
			continue;
		}
		if (!last_cr) {
			*o++ = '\r';
			sent++;
		}
		*o++ = '\n';
		sent++;
		last_cr = false;
		i++;
		line_end(st, line_empty);
		at_line_start = true;
		line_empty = true;
		if (st->done)
			break;
	}
	st->last_cr = last_cr;
	st->at_line_start = at_line_start;
	st->line_empty = line_empty;
	st->sent = sent;
	return (size_t)(o - out);
}

size_t
crlf_stuff_finish(struct crlf_stuff *st, unsigned char *out)
{
	size_t n = 0;

	if (!st->at_line_start && !st->done) {
		out[n++] = '\r';
		out[n++] = '\n';
		st->sent += 2;
	}
	memcpy(out + n, ".\r\n", 3);
	return n + 3;
}
