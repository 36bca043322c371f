/* pio.c: buffered POP3 line I/O with timeouts, over a pluggable transport.
 *
 * Input: one fixed buffer; a line longer than the caller's limit is
 * discarded to its end and reported once.  Output: one fixed buffer that
 * is flushed when full or on pio_flush. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "params.h"
#include "pio.h"
#include "util.h"

struct pio {
	const struct pio_ops *ops;
	void *ctx;
	int fd_in, fd_out;
	int write_timeout_ms;
	/* A write failed (out_timed_out: it ran out of time): the stream is cut,
	 * later output is dropped at once. */
	bool out_failed, out_timed_out;
	size_t in_start, in_end;
	size_t out_len;
	unsigned char in[PIO_INBUF_SIZE];
	unsigned char out[PIO_OUTBUF_SIZE];
};

/* A plain file descriptor transport.  On a blocking socket the waits
 * are the socket's own timeouts (SO_RCVTIMEO, SO_SNDTIMEO): a read or a
 * write is then one system call, not a poll() and the call.  Other fds
 * (pipes, non-blocking sockets) wait in poll(). */
struct fd_pair {
	int in, out;
	bool sock_timeouts;             /* in and out are blocking sockets */
	int rcv_timeout_ms;             /* as set on in; -2 not yet */
};

static ssize_t
fd_read(void *ctx, void *buf, size_t len)
{
	return read(((struct fd_pair *)ctx)->in, buf, len);
}

static ssize_t
fd_write(void *ctx, const void *buf, size_t len)
{
	return write(((struct fd_pair *)ctx)->out, buf, len);
}

static void
fd_close(void *ctx)
{
	free(ctx);
}

static const struct pio_ops fd_ops = {
	.read = fd_read, .write = fd_write, .pending = NULL, .close = fd_close
};

struct pio *
pio_new(const struct pio_ops *ops, void *ctx, int poll_fd_in, int poll_fd_out)
{
	/* Only the header is cleared: the buffers are written before they
	 * are read, and leaving their pages untouched keeps an idle session
	 * process small. */
	struct pio *p = xrealloc(NULL, 1, sizeof(*p));

	memset(p, 0, offsetof(struct pio, in));
	p->ops = ops;
	p->ctx = ctx;
	p->fd_in = poll_fd_in;
	p->fd_out = poll_fd_out;
	p->write_timeout_ms = 600 * 1000;
	return p;
}

static int
set_sock_timeout(int fd, int opt, int timeout_ms)
{
	/* 0 is no timeout for the socket option. */
	struct timeval tv = { 0, 0 };

	if (timeout_ms > 0) {
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
	}
	return setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

struct pio *
pio_new_fd(int fd_in, int fd_out)
{
	struct fd_pair *fp = xcalloc(1, sizeof(*fp));

	fp->in = fd_in;
	fp->out = fd_out;
	fp->rcv_timeout_ms = -2;
	/* A socket when setting its first timeout works (that is in
	 * pio_set_write_timeout, before anything is read). */
	if (fd_out == fd_in) {
		int fl = fcntl(fd_in, F_GETFL);

		fp->sock_timeouts = fl >= 0 && (fl & O_NONBLOCK) == 0;
	}
	return pio_new(&fd_ops, fp, fd_in, fd_out);
}

/* The fd transport's pair when it waits with socket timeouts. */
static struct fd_pair *
sock_pair(const struct pio *p)
{
	struct fd_pair *fp = p->ctx;

	return p->ops == &fd_ops && fp->sock_timeouts ? fp : NULL;
}

void
pio_set_transport(struct pio *p, const struct pio_ops *ops, void *ctx)
{
	if (p->ops->close != NULL)
		p->ops->close(p->ctx);
	p->ops = ops;
	p->ctx = ctx;
	pio_discard_input(p);
}

void
pio_free(struct pio **pp)
{
	struct pio *p = *pp;

	if (p == NULL)
		return;
	if (p->ops->close != NULL)
		p->ops->close(p->ctx);
	free(p);
	*pp = NULL;
}

void
pio_set_write_timeout(struct pio *p, int timeout_ms)
{
	struct fd_pair *fp = sock_pair(p);

	p->write_timeout_ms = timeout_ms;
	if (fp != NULL &&
	    set_sock_timeout(fp->out, SO_SNDTIMEO, timeout_ms) < 0)
		fp->sock_timeouts = false;
}

bool
pio_input_pending(const struct pio *p)
{
	return p->in_end > p->in_start ||
	       (p->ops->pending != NULL && p->ops->pending(p->ctx) > 0);
}

void
pio_discard_input(struct pio *p)
{
	p->in_start = p->in_end = 0;
}

/* Wait for fd to be ready for events within timeout_ms.  1 ready, 0
 * timeout, -1 error. */
static int
wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int r;

	do {
		r = poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	return r;
}

/* Refill the input buffer (after moving what is left to its start).
 * 1 read something, 0 EOF, -1 error, -2 timeout. */
static int
fill(struct pio *p, int timeout_ms)
{
	struct fd_pair *fp;
	ssize_t n;

	if (p->in_start > 0) {
		memmove(p->in, p->in + p->in_start, p->in_end - p->in_start);
		p->in_end -= p->in_start;
		p->in_start = 0;
	}
	if (p->in_end == sizeof(p->in))
		return 1;
	fp = sock_pair(p);
	if (fp != NULL && timeout_ms != 0 && timeout_ms != fp->rcv_timeout_ms) {
		if (set_sock_timeout(fp->in, SO_RCVTIMEO, timeout_ms) == 0) {
			fp->rcv_timeout_ms = timeout_ms;
		} else {
			fp->sock_timeouts = false;
			fp = NULL;
		}
	}
	if (fp != NULL && timeout_ms != 0) {
		do {
			n = read(fp->in, p->in + p->in_end,
				 sizeof(p->in) - p->in_end);
		} while (n < 0 && errno == EINTR);
		if (n > 0) {
			p->in_end += (size_t)n;
			return 1;
		}
		if (n == 0)
			return 0;
		return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
	}
	for (;;) {
		if (p->ops->pending == NULL || p->ops->pending(p->ctx) == 0) {
			int r = wait_fd(p->fd_in, POLLIN, timeout_ms);

			if (r == 0)
				return -2;
			if (r < 0)
				return -1;
		}
		n = p->ops->read(p->ctx, p->in + p->in_end,
				 sizeof(p->in) - p->in_end);
		if (n > 0) {
			p->in_end += (size_t)n;
			return 1;
		}
		if (n == 0)
			return 0;
		if (errno != EINTR && errno != EAGAIN)
			return -1;
	}
}

enum pio_status
pio_read_line(struct pio *p, char *buf, size_t size, size_t *len_r,
	      int timeout_ms)
{
	size_t len = 0;
	bool toolong = false, nul = false;

	*len_r = 0;
	for (;;) {
		unsigned char *start = p->in + p->in_start;
		size_t avail = p->in_end - p->in_start;
		unsigned char *lf = memchr(start, '\n', avail);
		size_t take = lf != NULL ? (size_t)(lf - start) : avail;

		if (memchr(start, '\0', take) != NULL)
			nul = true;
		if (!toolong) {
			if (len + take < size) {
				memcpy(buf + len, start, take);
				len += take;
			} else {
				toolong = true;
			}
		}
		p->in_start += take;
		if (lf != NULL) {
			p->in_start++;
			break;
		}
		/* About to wait for the client: answers to everything it sent
		 * so far go out now, in one write (pipelining). */
		if (pio_flush(p) < 0)
			return p->out_timed_out ? PIO_TIMEOUT : PIO_ERROR;
		switch (fill(p, timeout_ms)) {
		case 1:
			continue;
		case 0:
			return PIO_EOF;
		case -2:
			return PIO_TIMEOUT;
		default:
			return PIO_ERROR;
		}
	}
	if (toolong)
		return PIO_TOOLONG;
	if (nul)
		return PIO_NUL;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	*len_r = len;
	return PIO_LINE;
}

int
pio_read_exact(struct pio *p, void *buf, size_t len, int timeout_ms)
{
	unsigned char *b = buf;
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);

	if (pio_flush(p) < 0)
		return -1;
	while (len > 0) {
		size_t avail = p->in_end - p->in_start;

		if (avail > 0) {
			size_t n = avail < len ? avail : len;

			memcpy(b, p->in + p->in_start, n);
			p->in_start += n;
			b += n;
			len -= n;
			continue;
		}
		int left = -1;
		if (timeout_ms >= 0) {
			uint64_t now = now_ms();

			if (now >= deadline)
				return -1;
			left = (int)(deadline - now);
		}
		if (fill(p, left) != 1)
			return -1;
	}
	return 0;
}

static int
write_out(struct pio *p, const unsigned char *buf, size_t len)
{
	if (p->out_failed)
		return -1;
	while (len > 0) {
		ssize_t n = p->ops->write(p->ctx, buf, len);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/* A blocking socket says so when SO_SNDTIMEO ran
			 * out; other transports wait here. */
			if (sock_pair(p) != NULL ||
			    wait_fd(p->fd_out, POLLOUT, p->write_timeout_ms) <= 0) {
				p->out_timed_out = true;
				break;
			}
			continue;
		}
		break;
	}
	if (len == 0)
		return 0;
	p->out_failed = true;
	return -1;
}

bool
pio_write_timed_out(const struct pio *p)
{
	return p->out_timed_out;
}

int
pio_flush(struct pio *p)
{
	int r;

	if (p->out_len == 0)
		return 0;
	r = write_out(p, p->out, p->out_len);
	p->out_len = 0;
	return r;
}

int
pio_write(struct pio *p, const void *buf, size_t len)
{
	if (p->out_len + len > sizeof(p->out)) {
		if (pio_flush(p) < 0)
			return -1;
		if (len >= sizeof(p->out))
			return write_out(p, buf, len);
	}
	memcpy(p->out + p->out_len, buf, len);
	p->out_len += len;
	return 0;
}

int
pio_printf(struct pio *p, const char *fmt, ...)
{
	char line[POP3_REPLY_MAX * 2];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	return pio_write(p, line, (size_t)n);
}

unsigned char *
pio_reserve(struct pio *p, size_t want)
{
	if (want > sizeof(p->out))
		return NULL;
	if (sizeof(p->out) - p->out_len < want && pio_flush(p) < 0)
		return NULL;
	return p->out + p->out_len;
}

void
pio_commit(struct pio *p, size_t len)
{
	p->out_len += len;
}
