/* check_crlf.c: unit tests for message sizes, CRLF conversion,
 * byte-stuffing and the TOP line limit (core/crlf.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "crlf.h"

/* A growing byte string. */
struct bytes {
	unsigned char *p;
	size_t len, alloc;
};

static void
bytes_add(struct bytes *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->alloc) {
		b->alloc = (b->len + len + 1) * 2;
		b->p = realloc(b->p, b->alloc);
		ck_assert_ptr_nonnull(b->p);
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void
bytes_free(struct bytes *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->alloc = 0;
}

/* Size of in[0..len) fed in pieces of at most step bytes (0: whole). */
static uint64_t
count_chunked(const void *in, size_t len, size_t step)
{
	const unsigned char *p = in;
	struct crlf_count c;

	crlf_count_init(&c);
	if (step == 0)
		step = len;
	for (size_t off = 0; off < len; off += step)
		crlf_count_feed(&c, p + off,
				len - off < step ? len - off : step);
	return crlf_count_finish(&c);
}

/* Run the converter over in with the given chunk lengths (the last one
 * repeats), each output area exactly as large as the header asks for,
 * allocated on its own so that an overrun is a heap error.  Returns the
 * whole output, terminator included; *sent_r gets st.sent. */
static struct bytes
stuff_chunks(const void *in, size_t len, long body_lines,
	     const size_t *steps, size_t nsteps, uint64_t *sent_r)
{
	const unsigned char *p = in;
	struct crlf_stuff st;
	struct bytes out = { NULL, 0, 0 };
	size_t off = 0, k = 0;
	unsigned char *tail;

	crlf_stuff_init(&st, body_lines);
	while (off < len) {
		size_t step = steps[k < nsteps ? k : nsteps - 1];
		size_t n = len - off < step ? len - off : step;
		unsigned char *o = malloc(2 * n + 1);
		size_t w;

		ck_assert_ptr_nonnull(o);
		w = crlf_stuff_feed(&st, p + off, n, o);
		ck_assert_uint_le(w, 2 * n + 1);
		bytes_add(&out, o, w);
		free(o);
		off += n;
		k++;
	}
	tail = malloc(5);
	ck_assert_ptr_nonnull(tail);
	{
		size_t w = crlf_stuff_finish(&st, tail);

		ck_assert_uint_le(w, 5);
		bytes_add(&out, tail, w);
	}
	free(tail);
	if (sent_r != NULL)
		*sent_r = st.sent;
	return out;
}

static struct bytes
stuff_whole(const void *in, size_t len, long body_lines)
{
	size_t step = len > 0 ? len : 1;

	return stuff_chunks(in, len, body_lines, &step, 1, NULL);
}

/* The converted message, written from the definition in crlf.h by a
 * deliberately naive loop: LF without CR before it becomes CRLF, a
 * non-empty message not ending in LF gets CRLF. */
static struct bytes
reference_crlf(const unsigned char *in, size_t len)
{
	struct bytes b = { NULL, 0, 0 };

	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			bytes_add(&b, "\r", 1);
		bytes_add(&b, &in[i], 1);
	}
	if (len > 0 && in[len - 1] != '\n')
		bytes_add(&b, "\r\n", 2);
	if (b.p == NULL)
		bytes_add(&b, "", 0);
	return b;
}

/* RETR output from the converted form: a dot before each line that
 * starts with one, then ".CRLF". */
static struct bytes
reference_stuffed(const unsigned char *in, size_t len)
{
	struct bytes c = reference_crlf(in, len), b = { NULL, 0, 0 };

	for (size_t i = 0; i < c.len; i++) {
		if ((i == 0 || c.p[i - 1] == '\n') && c.p[i] == '.')
			bytes_add(&b, ".", 1);
		bytes_add(&b, &c.p[i], 1);
	}
	bytes_add(&b, ".\r\n", 3);
	bytes_free(&c);
	return b;
}

/* Undo the stuffing of a RETR output: drop the ".CRLF" terminator and
 * one dot at the start of each line.  Fails when there is no
 * terminator. */
static struct bytes
unstuff(const struct bytes *s)
{
	struct bytes b = { NULL, 0, 0 };
	size_t len = s->len;

	ck_assert_uint_ge(len, 3);
	ck_assert_msg(memcmp(s->p + len - 3, ".\r\n", 3) == 0,
		      "no terminator");
	ck_assert_msg(len == 3 || s->p[len - 4] == '\n',
		      "terminator not on a line of its own");
	len -= 3;
	for (size_t i = 0; i < len; i++) {
		if ((i == 0 || s->p[i - 1] == '\n') && s->p[i] == '.')
			continue;
		bytes_add(&b, &s->p[i], 1);
	}
	if (b.p == NULL)
		bytes_add(&b, "", 0);
	return b;
}

/* Every LF is part of a CRLF and the output ends in CRLF. */
static void
assert_all_crlf(const struct bytes *s)
{
	ck_assert_uint_ge(s->len, 2);
	for (size_t i = 0; i < s->len; i++)
		if (s->p[i] == '\n')
			ck_assert_msg(i > 0 && s->p[i - 1] == '\r',
				      "bare LF at offset %zu", i);
	ck_assert_int_eq(s->p[s->len - 2], '\r');
	ck_assert_int_eq(s->p[s->len - 1], '\n');
}

/* Check one message: its size and its RETR output, exactly. */
static void
check_msg(const char *in, size_t len, uint64_t want_size,
	  const char *want_out, size_t want_out_len)
{
	struct bytes out;
	uint64_t sent = 0;
	size_t step = len > 0 ? len : 1;

	ck_assert_uint_eq(count_chunked(in, len, 0), want_size);
	ck_assert_uint_eq(count_chunked(in, len, 1), want_size);
	out = stuff_chunks(in, len, -1, &step, 1, &sent);
	ck_assert_uint_eq(out.len, want_out_len);
	ck_assert_msg(memcmp(out.p, want_out, want_out_len) == 0,
		      "output differs: got \"%s\"", out.p);
	ck_assert_uint_eq(sent, want_size);
	bytes_free(&out);
}

#define MSG(in, size, out) check_msg(in, sizeof(in) - 1, size, out, \
				     sizeof(out) - 1)

/* Fixed cases. */

START_TEST(test_lf_text)
{
	MSG("a\nbc\n", 7, "a\r\nbc\r\n.\r\n");
}
END_TEST

START_TEST(test_crlf_text)
{
	MSG("a\r\nbc\r\n", 7, "a\r\nbc\r\n.\r\n");
}
END_TEST

START_TEST(test_mixed)
{
	MSG("a\r\nb\nc\r\n\n", 11, "a\r\nb\r\nc\r\n\r\n.\r\n");
}
END_TEST

START_TEST(test_no_final_newline)
{
	MSG("a\nb", 6, "a\r\nb\r\n.\r\n");
	MSG("x", 3, "x\r\n.\r\n");
}
END_TEST

START_TEST(test_empty)
{
	MSG("", 0, ".\r\n");
}
END_TEST

START_TEST(test_lone_dot)
{
	MSG(".", 3, "..\r\n.\r\n");
	MSG(".\n", 3, "..\r\n.\r\n");
	MSG("..", 4, "...\r\n.\r\n");
}
END_TEST

START_TEST(test_dot_lines)
{
	/* a dot-line at the start and in the middle */
	MSG(".\nx\n.\ny\n", 12, "..\r\nx\r\n..\r\ny\r\n.\r\n");
	MSG(".a\n.b\r\nc.d\n", 13, "..a\r\n..b\r\nc.d\r\n.\r\n");
	/* a dot after a bare CR does not start a line */
	MSG("a\r.b\n", 6, "a\r.b\r\n.\r\n");
	/* a dot-line last, without a newline */
	MSG("x\n.", 6, "x\r\n..\r\n.\r\n");
}
END_TEST

START_TEST(test_nul_bytes)
{
	MSG("a\0b\n\0\n", 8, "a\0b\r\n\0\r\n.\r\n");
	MSG("\0", 3, "\0\r\n.\r\n");
}
END_TEST

START_TEST(test_bare_cr)
{
	MSG("a\rb\n", 5, "a\rb\r\n.\r\n");
	MSG("\r", 3, "\r\r\n.\r\n");
	MSG("a\r", 4, "a\r\r\n.\r\n");
	MSG("\r\r\n", 3, "\r\r\n.\r\n");
	MSG("\n", 2, "\r\n.\r\n");
	MSG("\n\n", 4, "\r\n\r\n.\r\n");
}
END_TEST

START_TEST(test_long_lines)
{
	const size_t n = 300000;
	unsigned char *in = malloc(2 * n + 2);
	struct bytes out, ref;
	const size_t steps[] = { 1, 7, 4096, 65536, 100000 };

	ck_assert_ptr_nonnull(in);
	memset(in, 'a', 2 * n + 2);
	in[0] = '.';
	in[n] = '\n';
	in[n + 1] = '.';
	/* second line: no final newline */
	ref = reference_stuffed(in, 2 * n + 2);
	ck_assert_uint_eq(ref.len, 2 * n + 2 + 1 + 1 + 1 + 2 + 3);
	ck_assert_uint_eq(count_chunked(in, 2 * n + 2, 0), 2 * n + 2 + 1 + 2);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		out = stuff_chunks(in, 2 * n + 2, -1, &steps[i], 1, NULL);
		ck_assert_uint_eq(out.len, ref.len);
		ck_assert(memcmp(out.p, ref.p, ref.len) == 0);
		bytes_free(&out);
	}
	bytes_free(&ref);
	free(in);
}
END_TEST

START_TEST(test_crlf_split_across_chunks)
{
	/* CR at the end of one piece, LF at the start of the next */
	static const char in[] = "ab\r\ncd\r\n";
	const size_t steps[] = { 3, 1 };
	struct bytes out;

	ck_assert_uint_eq(count_chunked(in, 8, 3), 8);
	out = stuff_chunks(in, 8, -1, steps, 2, NULL);
	ck_assert_uint_eq(out.len, 11);
	ck_assert(memcmp(out.p, "ab\r\ncd\r\n.\r\n", 11) == 0);
	bytes_free(&out);
}
END_TEST

/* Invariant over random input. */

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

START_TEST(test_random_invariant)
{
	static const unsigned char alphabet[] = { 'a', '.', '\r', '\n', '\0' };
	unsigned char in[600];

	rng_state = 0x9e3779b97f4a7c15ULL;
	for (int iter = 0; iter < 4000; iter++) {
		size_t len = (size_t)(rng() % (iter < 100 ? 8 : sizeof(in)));
		size_t steps[16];
		size_t nsteps = 1 + (size_t)(rng() % 16);
		long body_lines;
		struct bytes whole, chunked, plain, ref;
		uint64_t size, sent = 0;

		for (size_t i = 0; i < len; i++)
			in[i] = alphabet[rng() % sizeof(alphabet)];
		for (size_t i = 0; i < nsteps; i++)
			steps[i] = 1 + (size_t)(rng() % (len / 2 + 2));

		size = count_chunked(in, len, 0);
		/* the size does not depend on how the bytes arrive */
		ck_assert_uint_eq(count_chunked(in, len, 1), size);
		ck_assert_uint_eq(count_chunked(in, len, steps[0]), size);

		whole = stuff_whole(in, len, -1);
		chunked = stuff_chunks(in, len, -1, steps, nsteps, &sent);
		/* (c) same output whatever the chunking */
		ck_assert_uint_eq(chunked.len, whole.len);
		ck_assert_msg(memcmp(chunked.p, whole.p, whole.len) == 0,
			      "iteration %d: chunked output differs", iter);
		/* (b) every line ends in CRLF */
		assert_all_crlf(&chunked);
		/* (a) unstuffed, it is exactly crlf_count_finish() octets */
		plain = unstuff(&chunked);
		ck_assert_msg(plain.len == size, "iteration %d: %zu octets "
			      "sent, size says %llu", iter, plain.len,
			      (unsigned long long)size);
		ck_assert_uint_eq(sent, size);
		/* and it is the output the definition asks for */
		ref = reference_stuffed(in, len);
		ck_assert_uint_eq(chunked.len, ref.len);
		ck_assert_msg(memcmp(chunked.p, ref.p, ref.len) == 0,
			      "iteration %d: output is not the definition's",
			      iter);
		bytes_free(&whole);
		bytes_free(&chunked);
		bytes_free(&plain);
		bytes_free(&ref);

		/* TOP: the chunking does not change what is sent either */
		body_lines = (long)(rng() % 5);
		whole = stuff_whole(in, len, body_lines);
		chunked = stuff_chunks(in, len, body_lines, steps, nsteps,
				       NULL);
		ck_assert_uint_eq(chunked.len, whole.len);
		ck_assert_msg(memcmp(chunked.p, whole.p, whole.len) == 0,
			      "iteration %d: chunked TOP %ld output differs",
			      iter, body_lines);
		assert_all_crlf(&chunked);
		/* TOP sends a prefix of what RETR sends, then ".CRLF" */
		ref = reference_stuffed(in, len);
		ck_assert_uint_le(chunked.len, ref.len);
		ck_assert(memcmp(chunked.p, ref.p, chunked.len - 3) == 0);
		bytes_free(&whole);
		bytes_free(&chunked);
		bytes_free(&ref);
	}
}
END_TEST

/* Long lines, sparse LFs: the sixteen-byte blocks of the RETR path,
 * blocks across chunk ends, CR and '.' at every position in a block. */
START_TEST(test_random_long_lines)
{
	static unsigned char in[4096];

	rng_state = 0x2545f4914f6cdd1dULL;
	for (int iter = 0; iter < 2000; iter++) {
		size_t len = (size_t)(rng() % sizeof(in));
		size_t steps[8];
		size_t nsteps = 1 + (size_t)(rng() % 8);
		unsigned int lf_every = 2 + (unsigned int)(rng() % 80);
		struct bytes whole, chunked, ref;
		uint64_t sent = 0;

		for (size_t i = 0; i < len; i++) {
			uint64_t r = rng();

			in[i] = r % lf_every == 0 ? '\n' :
				(r >> 8) % 23 == 0 ? '\r' :
				(r >> 16) % 29 == 0 ? '.' :
				(unsigned char)('A' + (r >> 24) % 26);
		}
		for (size_t i = 0; i < nsteps; i++)
			steps[i] = 1 + (size_t)(rng() % (iter % 3 == 0 ? 40 :
							 len + 1));
		ref = reference_stuffed(in, len);
		whole = stuff_whole(in, len, -1);
		chunked = stuff_chunks(in, len, -1, steps, nsteps, &sent);
		ck_assert_msg(whole.len == ref.len &&
			      memcmp(whole.p, ref.p, ref.len) == 0,
			      "iteration %d: output is not the definition's",
			      iter);
		ck_assert_msg(chunked.len == ref.len &&
			      memcmp(chunked.p, ref.p, ref.len) == 0,
			      "iteration %d: chunked output differs", iter);
		ck_assert_uint_eq(sent, count_chunked(in, len, 0));
		bytes_free(&whole);
		bytes_free(&chunked);
		bytes_free(&ref);
	}
}
END_TEST

/* The size by the definition, one byte at a time: every LF not after a
 * CR gains a CR, and a last line without LF gains a CRLF. */
static uint64_t
naive_size(const unsigned char *in, size_t len)
{
	uint64_t size = len;

	for (size_t i = 0; i < len; i++)
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			size++;
	if (len > 0 && in[len - 1] != '\n')
		size += 2;
	return size;
}

/* Sizes of long inputs, which the counter takes many bytes at a time:
 * random text of varying LF and CR density, LF-only and CRLF-only runs
 * longer than a counter lane can hold, no final newline, at every
 * alignment and cut into random pieces. */
START_TEST(test_count_random_long)
{
	static const size_t lens[] = { 0, 1, 15, 16, 17, 31, 32, 33, 4079,
				       4080, 4081, 4096, 8191, 20000 };
	enum { MAXLEN = 20000, PAD = 16 };
	unsigned char *mem = malloc(MAXLEN + PAD);

	ck_assert_ptr_nonnull(mem);
	rng_state = 0x2545f4914f6cdd1dULL;
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = iter < 200 ? lens[iter % (sizeof(lens) /
						       sizeof(lens[0]))] :
			(size_t)(rng() % (MAXLEN + 1));
		size_t off = (size_t)(rng() % PAD);
		unsigned char *in = mem + off;
		unsigned int kind = (unsigned int)(rng() % 6);
		unsigned int lf_odds = 1 + (unsigned int)(rng() % 80);
		uint64_t want;

		for (size_t i = 0; i < len; i++) {
			switch (kind) {
			case 0:         /* all LF: every lane counts */
				in[i] = '\n';
				break;
			case 1:         /* CRLF throughout: nothing to add */
				in[i] = i % 2 == 0 ? '\r' : '\n';
				break;
			case 2:         /* mixed line ends, bare CRs */
				in[i] = "\r\na\n"[rng() % 4];
				break;
			default:        /* text with lines of random length */
				in[i] = rng() % lf_odds == 0 ? '\n' :
					rng() % 50 == 0 ? '\r' :
					(unsigned char)('a' + rng() % 26);
				break;
			}
		}
		if (len > 0 && rng() % 3 == 0)
			in[len - 1] = 'z';      /* no final newline */
		want = naive_size(in, len);
		ck_assert_msg(count_chunked(in, len, 0) == want,
			      "iteration %d (kind %u, %zu bytes at +%zu): "
			      "%llu, want %llu", iter, kind, len, off,
			      (unsigned long long)count_chunked(in, len, 0),
			      (unsigned long long)want);
		ck_assert_uint_eq(count_chunked(in, len,
			1 + (size_t)(rng() % (len + 1))), want);
		ck_assert_uint_eq(count_chunked(in, len,
			1 + (size_t)(rng() % 40)), want);
	}
	free(mem);
}
END_TEST

/* TOP. */

static void
top_is(const char *in, long body_lines, const char *want)
{
	const size_t steps[] = { 1 };
	struct bytes out = stuff_whole(in, strlen(in), body_lines);
	struct bytes out1 = stuff_chunks(in, strlen(in), body_lines, steps, 1,
					 NULL);

	ck_assert_msg(out.len == strlen(want) &&
		      memcmp(out.p, want, out.len) == 0,
		      "TOP %ld of \"%s\": got \"%s\"", body_lines, in, out.p);
	ck_assert_msg(out1.len == out.len &&
		      memcmp(out1.p, out.p, out.len) == 0,
		      "TOP %ld: byte by byte differs", body_lines);
	bytes_free(&out);
	bytes_free(&out1);
}

static const char msg_lf[] =
	"From: a\nSubject: s\n\nb1\n.b2\nb3\n";

START_TEST(test_top_zero)
{
	top_is(msg_lf, 0, "From: a\r\nSubject: s\r\n\r\n.\r\n");
}
END_TEST

START_TEST(test_top_n)
{
	top_is(msg_lf, 1, "From: a\r\nSubject: s\r\n\r\nb1\r\n.\r\n");
	top_is(msg_lf, 2,
	       "From: a\r\nSubject: s\r\n\r\nb1\r\n..b2\r\n.\r\n");
	top_is(msg_lf, 3,
	       "From: a\r\nSubject: s\r\n\r\nb1\r\n..b2\r\nb3\r\n.\r\n");
	/* more lines than the body has: the whole message */
	top_is(msg_lf, 1000,
	       "From: a\r\nSubject: s\r\n\r\nb1\r\n..b2\r\nb3\r\n.\r\n");
	/* RETR (-1) is the whole message too */
	top_is(msg_lf, -1,
	       "From: a\r\nSubject: s\r\n\r\nb1\r\n..b2\r\nb3\r\n.\r\n");
}
END_TEST

START_TEST(test_top_no_blank_line)
{
	top_is("From: a\nSubject: s\n", 0, "From: a\r\nSubject: s\r\n.\r\n");
	top_is("From: a\nSubject: s", 0, "From: a\r\nSubject: s\r\n.\r\n");
	top_is("From: a\nSubject: s\n", 5, "From: a\r\nSubject: s\r\n.\r\n");
}
END_TEST

START_TEST(test_top_crlf_stored)
{
	static const char m[] = "From: a\r\nSubject: s\r\n\r\nb1\r\nb2\r\n";

	top_is(m, 0, "From: a\r\nSubject: s\r\n\r\n.\r\n");
	top_is(m, 1, "From: a\r\nSubject: s\r\n\r\nb1\r\n.\r\n");
	top_is(m, 2, "From: a\r\nSubject: s\r\n\r\nb1\r\nb2\r\n.\r\n");
}
END_TEST

START_TEST(test_top_body_edge)
{
	/* the body's last line has no newline */
	top_is("H: 1\n\nb1", 5, "H: 1\r\n\r\nb1\r\n.\r\n");
	top_is("H: 1\n\nb1", 1, "H: 1\r\n\r\nb1\r\n.\r\n");
	/* empty body lines count as lines */
	top_is("H: 1\n\n\n\nb3\n", 2, "H: 1\r\n\r\n\r\n\r\n.\r\n");
	/* only a blank line: empty header */
	top_is("\nbody\n", 0, "\r\n.\r\n");
	top_is("\nbody\n", 1, "\r\nbody\r\n.\r\n");
}
END_TEST

static Suite *
crlf_suite(void)
{
	Suite *s = suite_create("crlf");
	TCase *tc;

	tc = tcase_create("fixed");
	tcase_add_test(tc, test_lf_text);
	tcase_add_test(tc, test_crlf_text);
	tcase_add_test(tc, test_mixed);
	tcase_add_test(tc, test_no_final_newline);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_lone_dot);
	tcase_add_test(tc, test_dot_lines);
	tcase_add_test(tc, test_nul_bytes);
	tcase_add_test(tc, test_bare_cr);
	tcase_add_test(tc, test_long_lines);
	tcase_add_test(tc, test_crlf_split_across_chunks);
	suite_add_tcase(s, tc);

	tc = tcase_create("invariant");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_random_invariant);
	tcase_add_test(tc, test_random_long_lines);
	tcase_add_test(tc, test_count_random_long);
	suite_add_tcase(s, tc);

	tc = tcase_create("top");
	tcase_add_test(tc, test_top_zero);
	tcase_add_test(tc, test_top_n);
	tcase_add_test(tc, test_top_no_blank_line);
	tcase_add_test(tc, test_top_crlf_stored);
	tcase_add_test(tc, test_top_body_edge);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(crlf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
