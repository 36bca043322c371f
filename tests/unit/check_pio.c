/* check_pio.c: unit tests for buffered POP3 line I/O (core/pio.c): line
 * limits, NUL bytes, timeouts, pipelining and output buffering, over a
 * socketpair and over a fake transport. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "params.h"
#include "pio.h"
#include "util.h"

/* Fixture: a pio on one end of a socketpair, the test on the other. */

static int sv[2];               /* sv[0]: the test (peer); sv[1]: pio */
static struct pio *io;

static void
setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	io = pio_new_fd(sv[1], sv[1]);
	ck_assert_ptr_nonnull(io);
}

static void
teardown(void)
{
	pio_free(&io);
	close(sv[0]);
	close(sv[1]);
}

static void
peer_send(const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(sv[0], p, len);

		ck_assert_int_gt(n, 0);
		p += n;
		len -= (size_t)n;
	}
}

static void
peer_sends(const char *s)
{
	peer_send(s, strlen(s));
}

/* What the peer can read without waiting: -1 when nothing is there. */
static ssize_t
peer_read_now(char *buf, size_t size)
{
	ssize_t n = recv(sv[0], buf, size, MSG_DONTWAIT);

	if (n < 0)
		ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK,
			      "recv: %s", strerror(errno));
	return n;
}

/* The size session.c passes: a POP3_CMD_MAX + 1 buffer, size - 1. */
#define CMD_BUF (POP3_CMD_MAX + 1)
#define CMD_SIZE (CMD_BUF - 1)

static void
line_is(const char *want, int timeout_ms)
{
	char buf[CMD_BUF];
	size_t len = 99999;
	enum pio_status st;

	st = pio_read_line(io, buf, CMD_SIZE, &len, timeout_ms);
	ck_assert_int_eq(st, PIO_LINE);
	ck_assert_uint_eq(len, strlen(want));
	ck_assert_str_eq(buf, want);
}

static void
status_is(enum pio_status want, int timeout_ms)
{
	char buf[CMD_BUF];
	size_t len = 99999;

	ck_assert_int_eq(pio_read_line(io, buf, CMD_SIZE, &len, timeout_ms),
			 want);
	ck_assert_uint_eq(len, 0);
}

/* Reading. */

START_TEST(test_crlf_and_lf)
{
	peer_sends("USER alice\r\nPASS x y\nNOOP\r\n");
	line_is("USER alice", 1000);
	line_is("PASS x y", 1000);
	line_is("NOOP", 1000);
}
END_TEST

START_TEST(test_empty_and_cr_lines)
{
	/* only the CR just before the LF is part of the line end */
	peer_sends("\r\n\n\r\r\na\rb\r\n");
	line_is("", 1000);
	line_is("", 1000);
	line_is("\r", 1000);
	line_is("a\rb", 1000);
}
END_TEST

/* A line of n octets in all, line end included. */
static char *
make_line(size_t n, const char *end)
{
	size_t elen = strlen(end);
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	ck_assert_uint_ge(n, elen);
	for (size_t i = 0; i < n - elen; i++)
		s[i] = (char)('a' + i % 26);
	memcpy(s + n - elen, end, elen);
	s[n] = '\0';
	return s;
}

START_TEST(test_limit_crlf)
{
	/* RFC 2449: 255 octets, CRLF included, is the longest command. */
	char *ok = make_line(POP3_CMD_MAX, "\r\n");
	char *bad = make_line(POP3_CMD_MAX + 1, "\r\n");
	char want[CMD_BUF];

	memcpy(want, ok, POP3_CMD_MAX - 2);
	want[POP3_CMD_MAX - 2] = '\0';
	peer_sends(ok);
	peer_sends(bad);
	peer_sends("NEXT\r\n");
	line_is(want, 1000);
	status_is(PIO_TOOLONG, 1000);
	line_is("NEXT", 1000);
	free(ok);
	free(bad);
}
END_TEST

START_TEST(test_limit_lf)
{
	/* with a bare LF, the line may hold one more byte of payload */
	char *ok = make_line(POP3_CMD_MAX, "\n");
	char *bad = make_line(POP3_CMD_MAX + 1, "\n");
	char want[CMD_BUF];

	memcpy(want, ok, POP3_CMD_MAX - 1);
	want[POP3_CMD_MAX - 1] = '\0';
	peer_sends(ok);
	peer_sends(bad);
	peer_sends("NEXT\n");
	line_is(want, 1000);
	status_is(PIO_TOOLONG, 1000);
	line_is("NEXT", 1000);
	free(ok);
	free(bad);
}
END_TEST

START_TEST(test_limit_small_size)
{
	/* size 5: at most 4 bytes, CR included */
	char buf[8];
	size_t len;

	peer_sends("abc\r\nabcd\r\nabcd\n");
	ck_assert_int_eq(pio_read_line(io, buf, 5, &len, 1000), PIO_LINE);
	ck_assert_str_eq(buf, "abc");
	ck_assert_int_eq(pio_read_line(io, buf, 5, &len, 1000), PIO_TOOLONG);
	ck_assert_int_eq(pio_read_line(io, buf, 5, &len, 1000), PIO_LINE);
	ck_assert_str_eq(buf, "abcd");
	ck_assert_uint_eq(len, 4);
}
END_TEST

START_TEST(test_very_long_line)
{
	char *big = make_line(10000, "\r\n");

	peer_sends(big);
	peer_sends("NEXT\r\n");
	status_is(PIO_TOOLONG, 1000);
	line_is("NEXT", 1000);
	free(big);
}
END_TEST

START_TEST(test_very_long_line_slow)
{
	/* the long line arrives in pieces; the rest must still be skipped */
	char *big = make_line(5000, "\r\n");
	pid_t pid = fork();
	int r;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (size_t off = 0; off < 5000; off += 700) {
			size_t n = 5000 - off < 700 ? 5000 - off : 700;

			if (write(sv[0], big + off, n) != (ssize_t)n)
				break;
			usleep(2000);
		}
		r = write(sv[0], "NEXT\r\n", 6) == 6 ? 0 : 1;
		/* leave nothing allocated for a leak checker */
		free(big);
		_exit(r);
	}
	status_is(PIO_TOOLONG, 2000);
	line_is("NEXT", 2000);
	{
		int wst;

		ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
		ck_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
	}
	free(big);
}
END_TEST

START_TEST(test_nul)
{
	peer_send("US\0ER\r\nNEXT\r\n\0\r\nLAST\n", 22);
	status_is(PIO_NUL, 1000);
	line_is("NEXT", 1000);
	status_is(PIO_NUL, 1000);
	line_is("LAST", 1000);
}
END_TEST

START_TEST(test_eof)
{
	peer_sends("ONE\r\nhalf a li");
	shutdown(sv[0], SHUT_WR);
	line_is("ONE", 1000);
	status_is(PIO_EOF, 1000);
	status_is(PIO_EOF, 1000);
}
END_TEST

START_TEST(test_eof_at_start)
{
	shutdown(sv[0], SHUT_WR);
	status_is(PIO_EOF, 1000);
}
END_TEST

START_TEST(test_timeout)
{
	uint64_t t0, dt;

	t0 = now_ms();
	status_is(PIO_TIMEOUT, 100);
	dt = now_ms() - t0;
	ck_assert_msg(dt >= 90 && dt < 3000, "timed out after %llu ms",
		      (unsigned long long)dt);

	/* a partial line, then silence: timeout, not a line */
	peer_sends("NO");
	t0 = now_ms();
	status_is(PIO_TIMEOUT, 100);
	dt = now_ms() - t0;
	ck_assert_msg(dt >= 90 && dt < 3000, "timed out after %llu ms",
		      (unsigned long long)dt);
}
END_TEST

START_TEST(test_pipelining)
{
	char all[8000], want[32];
	size_t len = 0;

	/* more than the input buffer in one write */
	for (int i = 0; i < 400; i++)
		len += (size_t)snprintf(all + len, sizeof(all) - len,
					"CMD %d\r\n", i);
	ck_assert_uint_gt(len, PIO_INBUF_SIZE);
	peer_send(all, len);
	for (int i = 0; i < 400; i++) {
		snprintf(want, sizeof(want), "CMD %d", i);
		line_is(want, 1000);
	}
	status_is(PIO_TIMEOUT, 20);
}
END_TEST

START_TEST(test_input_pending)
{
	peer_sends("A\r\nB\r\n");
	ck_assert(!pio_input_pending(io));
	line_is("A", 1000);
	ck_assert(pio_input_pending(io));
	line_is("B", 1000);
	ck_assert(!pio_input_pending(io));

	peer_sends("C\r\nD\r\n");
	line_is("C", 1000);
	pio_discard_input(io);
	ck_assert(!pio_input_pending(io));
	peer_sends("E\r\n");
	line_is("E", 1000);
}
END_TEST

/* Output. */

START_TEST(test_write_buffered)
{
	char buf[64];

	ck_assert_int_eq(pio_write(io, "+OK a\r\n", 7), 0);
	ck_assert_int_eq(pio_printf(io, "+OK %d %s\r\n", 2, "b"), 0);
	ck_assert_int_eq(peer_read_now(buf, sizeof(buf)), -1);
	ck_assert_int_eq(pio_flush(io), 0);
	ck_assert_int_eq(peer_read_now(buf, sizeof(buf)), 16);
	ck_assert(memcmp(buf, "+OK a\r\n+OK 2 b\r\n", 16) == 0);
	/* nothing left, and an empty flush writes nothing */
	ck_assert_int_eq(pio_flush(io), 0);
	ck_assert_int_eq(peer_read_now(buf, sizeof(buf)), -1);
}
END_TEST

START_TEST(test_flush_when_waiting)
{
	char buf[64];

	/* two pipelined commands: the first reply waits while the second
	 * command is already buffered, both go out when input runs dry */
	peer_sends("A\r\nB\r\n");
	line_is("A", 1000);
	pio_printf(io, "+OK A\r\n");
	line_is("B", 1000);
	ck_assert_int_eq(peer_read_now(buf, sizeof(buf)), -1);
	pio_printf(io, "+OK B\r\n");
	ck_assert_int_eq(peer_read_now(buf, sizeof(buf)), -1);
	status_is(PIO_TIMEOUT, 30);
	ck_assert_int_eq(peer_read_now(buf, sizeof(buf)), 14);
	ck_assert(memcmp(buf, "+OK A\r\n+OK B\r\n", 14) == 0);
}
END_TEST

START_TEST(test_flush_before_partial_wait)
{
	char buf[64];

	/* the buffer holds half a line: the reply must go out before
	 * waiting for the rest of it */
	peer_sends("A\r\nB");
	line_is("A", 1000);
	pio_printf(io, "+OK A\r\n");
	status_is(PIO_TIMEOUT, 30);
	ck_assert_int_eq(peer_read_now(buf, sizeof(buf)), 7);
	ck_assert(memcmp(buf, "+OK A\r\n", 7) == 0);
}
END_TEST

START_TEST(test_printf_long)
{
	/* a reply longer than pio_printf's own buffer is cut, never
	 * overflowing */
	char arg[3000], buf[4096];
	ssize_t n;

	memset(arg, 'x', sizeof(arg) - 1);
	arg[sizeof(arg) - 1] = '\0';
	ck_assert_int_eq(pio_printf(io, "-ERR %s\r\n", arg), 0);
	ck_assert_int_eq(pio_flush(io), 0);
	n = peer_read_now(buf, sizeof(buf));
	ck_assert_int_gt(n, POP3_REPLY_MAX);
	ck_assert_int_le(n, POP3_REPLY_MAX * 2);
	ck_assert(memcmp(buf, "-ERR xxx", 8) == 0);
}
END_TEST

/* Fork a writer that sends pre + big + post through its own pio, while
 * the test reads everything.  Checks that all bytes arrive in order. */
static void
big_write(size_t bigsize, bool flush_between)
{
	unsigned char *big = malloc(bigsize), *got;
	size_t want = 4 + bigsize + 4, have = 0;
	pid_t pid;
	int wst;

	ck_assert_ptr_nonnull(big);
	for (size_t i = 0; i < bigsize; i++)
		big[i] = (unsigned char)(i * 7 + i / 251);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int r = 0;

		close(sv[0]);
		r |= pio_write(io, "HEAD", 4);
		if (flush_between)
			r |= pio_flush(io);
		r |= pio_write(io, big, bigsize);
		r |= pio_write(io, "TAIL", 4);
		r |= pio_flush(io);
		free(big);
		_exit(r == 0 ? 0 : 1);
	}
	close(sv[1]);
	sv[1] = -1;
	got = malloc(want + 1);
	ck_assert_ptr_nonnull(got);
	for (;;) {
		ssize_t n = read(sv[0], got + have, want + 1 - have);

		ck_assert_int_ge(n, 0);
		if (n == 0)
			break;
		have += (size_t)n;
		ck_assert_uint_le(have, want);
	}
	ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
	ck_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
	ck_assert_uint_eq(have, want);
	ck_assert(memcmp(got, "HEAD", 4) == 0);
	ck_assert(memcmp(got + 4, big, bigsize) == 0);
	ck_assert(memcmp(got + 4 + bigsize, "TAIL", 4) == 0);
	free(got);
	free(big);
}

START_TEST(test_big_write)
{
	big_write(PIO_OUTBUF_SIZE * 3 + 17, false);
}
END_TEST

START_TEST(test_big_write_flushed)
{
	big_write(PIO_OUTBUF_SIZE * 3 + 17, true);
}
END_TEST

START_TEST(test_write_exactly_full)
{
	big_write(PIO_OUTBUF_SIZE - 4, false);
}
END_TEST

START_TEST(test_write_buffer_size)
{
	big_write(PIO_OUTBUF_SIZE, false);
}
END_TEST

START_TEST(test_reserve_commit)
{
	char buf[64];
	unsigned char *p;

	pio_write(io, "ab", 2);
	p = pio_reserve(io, 10);
	ck_assert_ptr_nonnull(p);
	memcpy(p, "cdef", 4);
	pio_commit(io, 4);
	ck_assert_int_eq(peer_read_now(buf, sizeof(buf)), -1);
	ck_assert_ptr_null(pio_reserve(io, PIO_OUTBUF_SIZE + 1));
	pio_flush(io);
	ck_assert_int_eq(peer_read_now(buf, sizeof(buf)), 6);
	ck_assert(memcmp(buf, "abcdef", 6) == 0);
}
END_TEST

START_TEST(test_write_to_closed_peer)
{
	close(sv[0]);
	sv[0] = -1;
	ck_assert_int_eq(pio_write(io, "x", 1), 0);
	ck_assert_int_eq(pio_flush(io), -1);
	sv[0] = open("/dev/null", O_RDONLY);
}
END_TEST

/* Read_exact. */

START_TEST(test_read_exact)
{
	char buf[16];

	peer_send("\x00\x05hello", 7);
	ck_assert_int_eq(pio_read_exact(io, buf, 2, 1000), 0);
	ck_assert(memcmp(buf, "\x00\x05", 2) == 0);
	ck_assert_int_eq(pio_read_exact(io, buf, 5, 1000), 0);
	ck_assert(memcmp(buf, "hello", 5) == 0);
}
END_TEST

START_TEST(test_read_exact_after_line)
{
	char buf[16];

	/* bytes buffered while reading a line are used first */
	peer_sends("HELLO\r\nbinary");
	line_is("HELLO", 1000);
	ck_assert_int_eq(pio_read_exact(io, buf, 6, 1000), 0);
	ck_assert(memcmp(buf, "binary", 6) == 0);
}
END_TEST

START_TEST(test_read_exact_timeout)
{
	char buf[16];
	uint64_t t0 = now_ms(), dt;

	peer_send("abc", 3);
	ck_assert_int_eq(pio_read_exact(io, buf, 10, 100), -1);
	dt = now_ms() - t0;
	ck_assert_msg(dt >= 90 && dt < 3000, "gave up after %llu ms",
		      (unsigned long long)dt);
}
END_TEST

START_TEST(test_read_exact_total_timeout)
{
	/* a byte every 30 ms keeps the line busy, but the timeout bounds
	 * the whole read */
	char buf[64];
	uint64_t t0, dt;
	pid_t pid = fork();
	int wst;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (int i = 0; i < 40; i++) {
			if (write(sv[0], "z", 1) != 1)
				_exit(0);
			usleep(30000);
		}
		_exit(0);
	}
	t0 = now_ms();
	ck_assert_int_eq(pio_read_exact(io, buf, 40, 200), -1);
	dt = now_ms() - t0;
	ck_assert_msg(dt >= 190 && dt < 3000, "gave up after %llu ms",
		      (unsigned long long)dt);
	kill(pid, SIGKILL);
	waitpid(pid, &wst, 0);
}
END_TEST

START_TEST(test_read_exact_eof)
{
	char buf[16];

	peer_send("ab", 2);
	shutdown(sv[0], SHUT_WR);
	ck_assert_int_eq(pio_read_exact(io, buf, 4, 1000), -1);
}
END_TEST

START_TEST(test_read_exact_flushes)
{
	char buf[16];

	/* a pre-greeting exchange: what was written goes out before the
	 * read waits */
	pio_write(io, "\x00\x01", 2);
	peer_send("k", 1);
	ck_assert_int_eq(pio_read_exact(io, buf, 1, 1000), 0);
	ck_assert_int_eq(peer_read_now(buf, sizeof(buf)), 2);
}
END_TEST

/* A fake transport: bytes from memory, trickled one at a time. */

struct fake {
	const char *in;
	size_t in_len, in_pos;
	size_t max_read;        /* bytes per read call */
	int eagain_every;       /* every n-th read fails with EAGAIN */
	int reads;
	char out[4096];
	size_t out_len;
	size_t max_write;       /* bytes per write call */
	int closed;
};

static ssize_t
fake_read(void *ctx, void *buf, size_t len)
{
	struct fake *f = ctx;
	size_t n = f->in_len - f->in_pos;

	f->reads++;
	if (f->eagain_every > 0 && f->reads % f->eagain_every == 0) {
		errno = EAGAIN;
		return -1;
	}
	if (n > len)
		n = len;
	if (n > f->max_read)
		n = f->max_read;
	memcpy(buf, f->in + f->in_pos, n);
	f->in_pos += n;
	return (ssize_t)n;
}

static ssize_t
fake_write(void *ctx, const void *buf, size_t len)
{
	struct fake *f = ctx;
	size_t n = len < f->max_write ? len : f->max_write;

	ck_assert_uint_le(f->out_len + n, sizeof(f->out));
	memcpy(f->out + f->out_len, buf, n);
	f->out_len += n;
	return (ssize_t)n;
}

/* All input is "already decoded": poll is never needed. */
static size_t
fake_pending(void *ctx)
{
	struct fake *f = ctx;

	return f->in_len - f->in_pos > 0 ? f->in_len - f->in_pos : 1;
}

static void
fake_close(void *ctx)
{
	((struct fake *)ctx)->closed++;
}

static const struct pio_ops fake_ops = {
	.read = fake_read, .write = fake_write, .pending = fake_pending,
	.close = fake_close,
};

START_TEST(test_fake_transport)
{
	static const char in[] = "CAPA\r\nUSER a b\nX\0Y\r\nLAST\r\n";
	struct fake f = {
		.in = in, .in_len = sizeof(in) - 1, .max_read = 1,
		.eagain_every = 3, .max_write = 3,
	};
	struct pio *p = pio_new(&fake_ops, &f, -1, -1);
	char buf[CMD_BUF];
	size_t len;

	ck_assert_int_eq(pio_read_line(p, buf, CMD_SIZE, &len, 1000), PIO_LINE);
	ck_assert_str_eq(buf, "CAPA");
	pio_printf(p, "+OK capa\r\n");
	ck_assert_int_eq(pio_read_line(p, buf, CMD_SIZE, &len, 1000), PIO_LINE);
	ck_assert_str_eq(buf, "USER a b");
	/* the reply was flushed when the next line had to be read, in short
	 * writes */
	ck_assert_uint_eq(f.out_len, 10);
	ck_assert(memcmp(f.out, "+OK capa\r\n", 10) == 0);
	ck_assert_int_eq(pio_read_line(p, buf, CMD_SIZE, &len, 1000), PIO_NUL);
	ck_assert_int_eq(pio_read_line(p, buf, CMD_SIZE, &len, 1000), PIO_LINE);
	ck_assert_str_eq(buf, "LAST");
	ck_assert(pio_input_pending(p));        /* the transport says so */
	ck_assert_int_eq(pio_read_line(p, buf, CMD_SIZE, &len, 1000), PIO_EOF);
	pio_free(&p);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(f.closed, 1);
}
END_TEST

START_TEST(test_set_transport)
{
	static const char in1[] = "STLS\r\nbuffered junk\r\n";
	static const char in2[] = "AFTER\r\n";
	struct fake f1 = { .in = in1, .in_len = sizeof(in1) - 1,
			   .max_read = 64, .max_write = 64 };
	struct fake f2 = { .in = in2, .in_len = sizeof(in2) - 1,
			   .max_read = 64, .max_write = 64 };
	struct pio *p = pio_new(&fake_ops, &f1, -1, -1);
	char buf[CMD_BUF];
	size_t len;

	ck_assert_int_eq(pio_read_line(p, buf, CMD_SIZE, &len, 1000), PIO_LINE);
	ck_assert_str_eq(buf, "STLS");
	/* the junk sent with STLS must not be read after the switch, and
	 * the old transport is closed */
	pio_set_transport(p, &fake_ops, &f2);
	ck_assert_int_eq(f1.closed, 1);
	ck_assert_int_eq(f2.closed, 0);
	ck_assert_int_eq(pio_read_line(p, buf, CMD_SIZE, &len, 1000), PIO_LINE);
	ck_assert_str_eq(buf, "AFTER");
	pio_free(&p);
	ck_assert_int_eq(f1.closed, 1);
	ck_assert_int_eq(f2.closed, 1);
}
END_TEST

static Suite *
pio_suite(void)
{
	Suite *s = suite_create("pio");
	TCase *tc;

	tc = tcase_create("read");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_crlf_and_lf);
	tcase_add_test(tc, test_empty_and_cr_lines);
	tcase_add_test(tc, test_limit_crlf);
	tcase_add_test(tc, test_limit_lf);
	tcase_add_test(tc, test_limit_small_size);
	tcase_add_test(tc, test_very_long_line);
	tcase_add_test(tc, test_very_long_line_slow);
	tcase_add_test(tc, test_nul);
	tcase_add_test(tc, test_eof);
	tcase_add_test(tc, test_eof_at_start);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_pipelining);
	tcase_add_test(tc, test_input_pending);
	suite_add_tcase(s, tc);

	tc = tcase_create("write");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_write_buffered);
	tcase_add_test(tc, test_flush_when_waiting);
	tcase_add_test(tc, test_flush_before_partial_wait);
	tcase_add_test(tc, test_printf_long);
	tcase_add_test(tc, test_big_write);
	tcase_add_test(tc, test_big_write_flushed);
	tcase_add_test(tc, test_write_exactly_full);
	tcase_add_test(tc, test_write_buffer_size);
	tcase_add_test(tc, test_reserve_commit);
	tcase_add_test(tc, test_write_to_closed_peer);
	suite_add_tcase(s, tc);

	tc = tcase_create("read_exact");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_read_exact);
	tcase_add_test(tc, test_read_exact_after_line);
	tcase_add_test(tc, test_read_exact_timeout);
	tcase_add_test(tc, test_read_exact_total_timeout);
	tcase_add_test(tc, test_read_exact_eof);
	tcase_add_test(tc, test_read_exact_flushes);
	suite_add_tcase(s, tc);

	tc = tcase_create("transport");
	tcase_add_test(tc, test_fake_transport);
	tcase_add_test(tc, test_set_transport);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(pio_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
