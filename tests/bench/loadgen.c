/* loadgen.c: POP3 load generator for the benchmark (tests/bench/run-bench).
 *
 * One process, one epoll loop, no threads, no libraries.  Modes:
 *
 *   login  N clients, client i logging in as PREFIX<i>: connect, greeting,
 *          USER, PASS, STAT, QUIT, wait for the server to close; again,
 *          for a duration or a number of sessions.  Prints sessions/s and
 *          the latency of a whole session (p50, p99, max).
 *   retr   one session: LIST, then RETR of every message, pipelined (all
 *          commands sent at once) or one at a time.  Prints MB/s and, one
 *          at a time, the latency of each RETR (p50, p99, max).
 *   idle   N sessions, session i logged in as PREFIX<i>, then held open
 *          until stdin reaches end of file; prints "READY N" once all are
 *          logged in.  Ends with QUIT on each.
 *
 * Every answer is checked: a -ERR, a malformed reply, a RETR whose
 * unstuffed length differs from LIST or from its own "+OK N octets", a
 * message count that differs from STAT, a STAT count or size other than
 * --expect-count and --expect-size (login and retr), or a connection
 * closed early is an error: it is printed and the exit status is 1.  Output is one line of
 * "key=value" fields for the driver to parse.
 *
 * Every wait is bounded by --timeout (seconds, for any single step). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Receive buffer of a login or idle client: replies are single lines. */
#define SMALL_BUF 1024
/* Receive buffer of the retr client: room for large reads. */
#define BIG_BUF (4u * 1024 * 1024)
/* Bounds on what we accept from the command line. */
#define MAX_CLIENTS 100000
#define MAX_MESSAGES 10000000
#define MAX_LATENCIES 20000000

struct opts {
	const char *mode;
	const char *host;
	int port;
	const char *prefix;
	const char *user;
	const char *password;
	unsigned int clients;
	double duration;
	uint64_t sessions;
	bool pipeline;
	double timeout;
	long expect_count;      /* STAT count expected, -1: any */
	long long expect_size;  /* STAT size expected, -1: any */
	unsigned int ramp;      /* idle: logins in progress at once */
};

static struct opts o = {
	.host = "127.0.0.1", .port = 110, .prefix = "user", .user = NULL,
	.password = "secret", .clients = 16, .duration = 0, .sessions = 0,
	.pipeline = false, .timeout = 30, .expect_count = -1,
	.expect_size = -1, .ramp = 64,
};

static unsigned long errors;

static void
fail(const char *fmt, ...)
{
	va_list ap;

	errors++;
	if (errors > 20)
		return;
	fprintf(stderr, "loadgen: error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "loadgen: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		die("out of memory");
	return p;
}

/* ---- latencies ---------------------------------------------------------- */

struct lat {
	uint64_t *v;
	size_t n, alloc;
};

static void
lat_add(struct lat *l, uint64_t ns)
{
	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 4096;

		if (na > MAX_LATENCIES)
			return;
		l->v = realloc(l->v, na * sizeof(*l->v));
		if (l->v == NULL)
			die("out of memory");
		l->alloc = na;
	}
	l->v[l->n++] = ns;
}

static int
u64cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Percentile p (0..100) in milliseconds; 0 when empty. */
static double
lat_pct(struct lat *l, double p)
{
	size_t i;

	if (l->n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)(l->n - 1) + 0.5);
	return (double)l->v[i] / 1e6;
}

static void
lat_print(struct lat *l)
{
	qsort(l->v, l->n, sizeof(*l->v), u64cmp);
	printf(" p50_ms=%.3f p99_ms=%.3f max_ms=%.3f", lat_pct(l, 50),
	       lat_pct(l, 99), lat_pct(l, 100));
}

/* ---- connections -------------------------------------------------------- */

static struct sockaddr_in server;

static int
connect_nb(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&server, sizeof(server)) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Write all of buf to a non-blocking socket holding little unsent data;
 * short writes of command lines do not happen in practice, but are
 * errors rather than silently dropped bytes. */
static int
send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- login and idle: a small state machine per client ------------------- */

enum step { S_CONNECT, S_GREET, S_USER, S_PASS, S_STAT, S_IDLE, S_QUIT,
	    S_CLOSE, S_DONE };

struct client {
	int fd;
	unsigned int id;
	enum step step;
	uint64_t start, deadline;
	size_t len;
	char buf[SMALL_BUF];
};

static int ep;

static void
client_send(struct client *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) ||
	    send_all(c->fd, line, (size_t)n) < 0) {
		fail("client %u: send failed: %s", c->id, strerror(errno));
		c->step = S_DONE;
	}
}

static bool
client_start(struct client *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	c->fd = connect_nb();
	if (c->fd < 0) {
		fail("client %u: connect: %s", c->id, strerror(errno));
		return false;
	}
	c->step = S_GREET;
	c->len = 0;
	c->start = now_ns();
	c->deadline = c->start + (uint64_t)(o.timeout * 1e9);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	return true;
}

static void
client_end(struct client *c)
{
	if (c->fd >= 0) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
}

/* One reply line arrived (CRLF stripped); advance.  false: error. */
static bool
client_line(struct client *c, const char *line)
{
	const char *user = o.user;
	char name[128];

	if (strncmp(line, "+OK", 3) != 0) {
		fail("client %u: step %d: %s", c->id, (int)c->step, line);
		return false;
	}
	if (user == NULL) {
		snprintf(name, sizeof(name), "%s%u", o.prefix, c->id);
		user = name;
	}
	switch (c->step) {
	case S_GREET:
		c->step = S_USER;
		client_send(c, "USER %s\r\n", user);
		break;
	case S_USER:
		c->step = S_PASS;
		client_send(c, "PASS %s\r\n", o.password);
		break;
	case S_PASS:
		if (strcmp(o.mode, "idle") == 0) {
			c->step = S_IDLE;
			break;
		}
		c->step = S_STAT;
		client_send(c, "STAT\r\n");
		break;
	case S_STAT: {
		long count;
		long long size;

		if (sscanf(line, "+OK %ld %lld", &count, &size) != 2 ||
		    (o.expect_count >= 0 && count != o.expect_count) ||
		    (o.expect_size >= 0 && size != o.expect_size)) {
			fail("client %u: unexpected STAT answer: %s", c->id,
			     line);
			return false;
		}
		c->step = S_QUIT;
		client_send(c, "QUIT\r\n");
		break;
	}
	case S_QUIT:
		c->step = S_CLOSE;
		break;
	default:
		fail("client %u: unexpected line in step %d: %s", c->id,
		     (int)c->step, line);
		return false;
	}
	return true;
}

/* Input on a client.  Returns true when the session finished well. */
static void
client_input(struct client *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len,
				 sizeof(c->buf) - 1 - c->len, 0);
		char *p, *lf;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			if (c->step == S_CLOSE && n == 0 && c->len == 0) {
				c->step = S_DONE;
				return;
			}
			fail("client %u: connection closed in step %d%s%s",
			     c->id, (int)c->step, n < 0 ? ": " : "",
			     n < 0 ? strerror(errno) : "");
			c->step = S_DONE;
			c->len = SMALL_BUF;     /* marks the failure */
			return;
		}
		c->len += (size_t)n;
		c->buf[c->len] = '\0';
		p = c->buf;
		while ((lf = memchr(p, '\n', c->len - (size_t)(p - c->buf)))
		       != NULL) {
			if (lf == p || lf[-1] != '\r') {
				fail("client %u: line without CRLF", c->id);
				c->step = S_DONE;
				c->len = SMALL_BUF;
				return;
			}
			lf[-1] = '\0';
			if (!client_line(c, p)) {
				c->step = S_DONE;
				c->len = SMALL_BUF;
				return;
			}
			p = lf + 1;
		}
		c->len -= (size_t)(p - c->buf);
		memmove(c->buf, p, c->len);
		if (c->len >= sizeof(c->buf) - 1) {
			fail("client %u: reply line too long", c->id);
			c->step = S_DONE;
			return;
		}
	}
}

static int
run_login(void)
{
	struct client *cl = xcalloc(o.clients, sizeof(*cl));
	struct epoll_event evs[256];
	struct lat lat = { 0 };
	uint64_t t0 = now_ns(), tend, started = 0, done = 0;
	unsigned int active = 0;
	bool stopping = false;

	tend = o.duration > 0 ? t0 + (uint64_t)(o.duration * 1e9) : UINT64_MAX;
	for (unsigned int i = 0; i < o.clients; i++) {
		cl[i].id = i;
		cl[i].fd = -1;
		if (o.sessions > 0 && started >= o.sessions)
			break;
		if (client_start(&cl[i])) {
			started++;
			active++;
		}
	}
	while (active > 0) {
		int n = epoll_wait(ep, evs, 256, 100);
		uint64_t now = now_ns();

		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		if (now >= tend)
			stopping = true;
		for (int i = 0; i < n; i++) {
			struct client *c = evs[i].data.ptr;

			client_input(c);
			if (c->step != S_DONE)
				continue;
			client_end(c);
			active--;
			if (c->len != SMALL_BUF) {
				done++;
				lat_add(&lat, now_ns() - c->start);
			}
			if (errors > 0)
				stopping = true;
			if (!stopping &&
			    (o.sessions == 0 || started < o.sessions) &&
			    client_start(c)) {
				started++;
				active++;
			}
		}
		for (unsigned int i = 0; i < o.clients; i++) {
			if (cl[i].fd >= 0 && now > cl[i].deadline) {
				fail("client %u: timeout in step %d", i,
				     (int)cl[i].step);
				client_end(&cl[i]);
				active--;
				stopping = true;
			}
		}
	}
	{
		double secs = (double)(now_ns() - t0) / 1e9;

		printf("mode=login clients=%u sessions=%" PRIu64
		       " seconds=%.3f rate=%.1f errors=%lu", o.clients, done,
		       secs, (double)done / secs, errors);
		lat_print(&lat);
		printf("\n");
	}
	free(lat.v);
	free(cl);
	return errors > 0 ? 1 : 0;
}

static int
run_idle(void)
{
	struct client *cl = xcalloc(o.clients, sizeof(*cl));
	struct epoll_event evs[256];
	unsigned int next = 0, pending = 0, ready = 0, closed = 0;
	bool quitting = false, stdin_open = true;
	struct epoll_event sev = { .events = EPOLLIN, .data.ptr = NULL };
	uint64_t t0 = now_ns();

	if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev) < 0)
		die("stdin: epoll_ctl: %s", strerror(errno));
	for (;;) {
		int n;

		/* Keep at most o.ramp logins in progress. */
		while (!quitting && next < o.clients && pending < o.ramp) {
			cl[next].id = next;
			if (!client_start(&cl[next])) {
				quitting = true;
				break;
			}
			next++;
			pending++;
		}
		if (quitting && closed == next)
			break;
		n = epoll_wait(ep, evs, 256, 1000);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct client *c = evs[i].data.ptr;
			enum step before;

			if (c == NULL) {
				char b[256];

				if (read(0, b, sizeof(b)) <= 0) {
					epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
					stdin_open = false;
				}
				continue;
			}
			before = c->step;
			client_input(c);
			if (before != S_IDLE && c->step == S_IDLE) {
				pending--;
				if (++ready == o.clients) {
					printf("READY %u seconds=%.3f\n", ready,
					       (double)(now_ns() - t0) / 1e9);
					fflush(stdout);
				}
			}
			if (c->step == S_DONE) {
				if (before != S_IDLE && before != S_QUIT &&
				    before != S_CLOSE)
					pending--;
				client_end(c);
				closed++;
				quitting = true;
			}
		}
		if (!stdin_open && !quitting) {
			quitting = true;
			for (unsigned int i = 0; i < next; i++) {
				if (cl[i].step == S_IDLE) {
					cl[i].step = S_QUIT;
					cl[i].deadline = now_ns() +
						(uint64_t)(o.timeout * 1e9);
					client_send(&cl[i], "QUIT\r\n");
				}
			}
		}
		for (unsigned int i = 0; i < next; i++) {
			if (cl[i].fd >= 0 && cl[i].step != S_IDLE &&
			    now_ns() > cl[i].deadline) {
				fail("client %u: timeout in step %d", i,
				     (int)cl[i].step);
				client_end(&cl[i]);
				closed++;
				quitting = true;
			}
			if (cl[i].fd >= 0 && cl[i].step == S_DONE) {
				client_end(&cl[i]);
				closed++;
			}
		}
	}
	printf("mode=idle sessions=%u ready=%u errors=%lu\n", o.clients,
	       ready, errors);
	free(cl);
	return errors > 0 || ready != o.clients ? 1 : 0;
}

/* ---- retr: one session, the whole maildrop ------------------------------- */

struct rconn {
	int fd;
	unsigned char *buf;
	size_t start, end;
	uint64_t deadline;
};

/* Wait until fd is readable and read more into the buffer.  false on
 * EOF, error or timeout (reported). */
static bool
rfill(struct rconn *r)
{
	for (;;) {
		ssize_t n;

		if (r->start > 0 && (r->end == BIG_BUF ||
				     r->start > BIG_BUF / 2)) {
			memmove(r->buf, r->buf + r->start, r->end - r->start);
			r->end -= r->start;
			r->start = 0;
		}
		if (r->end == BIG_BUF) {
			fail("retr: receive buffer full");
			return false;
		}
		n = recv(r->fd, r->buf + r->end, BIG_BUF - r->end, 0);
		if (n > 0) {
			r->end += (size_t)n;
			return true;
		}
		if (n == 0) {
			fail("retr: connection closed by the server");
			return false;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			fail("retr: recv: %s", strerror(errno));
			return false;
		}
		{
			struct epoll_event ev;
			uint64_t now = now_ns();
			int w;

			if (now >= r->deadline) {
				fail("retr: timeout");
				return false;
			}
			w = epoll_wait(ep, &ev, 1,
				       (int)((r->deadline - now) / 1000000 + 1));
			if (w < 0 && errno != EINTR) {
				fail("retr: epoll_wait: %s", strerror(errno));
				return false;
			}
		}
	}
}

/* One status line, CRLF stripped, into line.  false on error. */
static bool
rline(struct rconn *r, char *line, size_t size)
{
	unsigned char *lf;
	size_t len;

	r->deadline = now_ns() + (uint64_t)(o.timeout * 1e9);
	while ((lf = memchr(r->buf + r->start, '\n', r->end - r->start))
	       == NULL) {
		if (r->end - r->start > 4096) {
			fail("retr: status line too long");
			return false;
		}
		if (!rfill(r))
			return false;
	}
	len = (size_t)(lf - (r->buf + r->start));
	if (len == 0 || lf[-1] != '\r' || len >= size) {
		fail("retr: malformed status line");
		return false;
	}
	memcpy(line, r->buf + r->start, len - 1);
	line[len - 1] = '\0';
	r->start += len + 1;
	return true;
}

/* The first "\r\n." in p[0..n), or NULL.  With SSE2, sixteen bytes at a
 * time (a '.' after an LF, the rare byte, first): memmem's general search
 * would take the load generator about as much CPU as the server needs to
 * send the bytes, and bound the RETR figures by the client. */
static unsigned char *
find_crlf_dot(unsigned char *p, size_t n)
{
	size_t i = 2;

#if defined(__SSE2__)
	const __m128i dot = _mm_set1_epi8('.'), lf = _mm_set1_epi8('\n');

	/* Each position k in [2, i) has been looked at as the '.'. */
	for (; i + 16 <= n; i += 16) {
		__m128i c = _mm_loadu_si128((const __m128i *)(void *)(p + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(void *)
					    (p + i - 1));
		unsigned int m = (unsigned int)_mm_movemask_epi8(
			_mm_and_si128(_mm_cmpeq_epi8(c, dot),
				      _mm_cmpeq_epi8(b, lf)));

		for (; m != 0; m &= m - 1) {
			size_t k = i + (size_t)__builtin_ctz(m);

			if (p[k - 2] == '\r')
				return p + k - 2;
		}
	}
#endif
	if (n < 3)
		return NULL;
	return memmem(p + i - 2, n - (i - 2), "\r\n.", 3);
}

/* The body of a multi-line answer up to and including ".CRLF".  Returns
 * the unstuffed length (CRLF line ends included, terminator excluded) in
 * *len_r.  The status line's CRLF was just
 * consumed; it is looked at again so that a first line starting with '.'
 * is seen like any other. */
static bool
rbody(struct rconn *r, uint64_t *len_r)
{
	uint64_t len = 0;
	size_t pos = r->start - 2;      /* on the status line's CR */
	r->deadline = now_ns() + (uint64_t)(o.timeout * 1e9);
	for (;;) {
		unsigned char *base = r->buf;
		size_t avail = r->end - pos;
		unsigned char *q = find_crlf_dot(base + pos, avail);

		if (q == NULL) {
			/* Keep the last two bytes: they may start a match. */
			if (avail > 2) {
				len += avail - 2;
				pos = r->end - 2;
			}
			r->start = pos;
			if (!rfill(r))
				return false;
			pos = r->start;
			continue;
		}
		if ((size_t)(r->end - (size_t)(q - base)) < 5) {
			len += (uint64_t)(q - (base + pos));
			pos = (size_t)(q - base);
			r->start = pos;
			if (!rfill(r))
				return false;
			pos = r->start;
			continue;
		}
		len += (uint64_t)(q - (base + pos)) + 2;
		if (q[3] == '.') {
			len += 1;
			pos = (size_t)(q - base) + 4;
			/* pos may be inside a line now; the next "\r\n."
			 * still marks the next line start. */
			continue;
		}
		if (q[3] == '\r' && q[4] == '\n') {
			r->start = (size_t)(q - base) + 5;
			/* The status line's CRLF is not part of the body. */
			*len_r = len - 2;
			return true;
		}
		fail("retr: line starting with an unstuffed '.'");
		return false;
	}
}

static uint64_t *list_sizes;
static size_t list_n, list_alloc;
static bool list_bad;

static void
list_line(const char *tmp)
{
	unsigned long long num, size;

	if (sscanf(tmp, "%llu %llu", &num, &size) != 2 ||
	    num != list_n + 1 || list_n >= MAX_MESSAGES) {
		list_bad = true;
		return;
	}
	if (list_n == list_alloc) {
		list_alloc = list_alloc ? list_alloc * 2 : 1024;
		list_sizes = realloc(list_sizes, list_alloc * sizeof(uint64_t));
		if (list_sizes == NULL)
			die("out of memory");
	}
	list_sizes[list_n++] = size;
}

static bool
rcmd(struct rconn *r, const char *cmd, char *line, size_t size)
{
	if (send_all(r->fd, cmd, strlen(cmd)) < 0) {
		fail("retr: send: %s", strerror(errno));
		return false;
	}
	if (!rline(r, line, size))
		return false;
	if (strncmp(line, "+OK", 3) != 0) {
		fail("retr: %.*s answered: %s", (int)strcspn(cmd, "\r"), cmd,
		     line);
		return false;
	}
	return true;
}

/* Check the answer to RETR i (1-based); adds its wire length. */
static bool
retr_answer(struct rconn *r, size_t i, uint64_t *wire)
{
	char line[512];
	unsigned long long octets;
	uint64_t len;

	if (!rline(r, line, sizeof(line)))
		return false;
	if (sscanf(line, "+OK %llu octets", &octets) != 1) {
		fail("retr: RETR %zu answered: %s", i, line);
		return false;
	}
	if (!rbody(r, &len))
		return false;
	if (len != list_sizes[i - 1] || octets != list_sizes[i - 1]) {
		fail("retr: RETR %zu: %llu octets sent, %llu announced, %llu "
		     "in LIST", i, (unsigned long long)len, octets,
		     (unsigned long long)list_sizes[i - 1]);
		return false;
	}
	*wire += len;
	return true;
}

static int
run_retr(void)
{
	struct rconn r = { .fd = -1 };
	struct epoll_event ev = { .events = EPOLLIN };
	char line[512], cmd[64];
	struct lat lat = { 0 };
	unsigned long long stat_n = 0, stat_size = 0;
	uint64_t wire = 0, t0, t1;
	const char *user = o.user ? o.user : "user0";

	r.buf = malloc(BIG_BUF);
	if (r.buf == NULL)
		die("out of memory");
	r.fd = connect_nb();
	if (r.fd < 0)
		die("connect: %s", strerror(errno));
	ev.data.fd = r.fd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, r.fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	if (!rline(&r, line, sizeof(line)) || strncmp(line, "+OK", 3) != 0) {
		fail("retr: no greeting");
		goto out;
	}
	snprintf(cmd, sizeof(cmd), "USER %s\r\n", user);
	if (!rcmd(&r, cmd, line, sizeof(line)))
		goto out;
	snprintf(cmd, sizeof(cmd), "PASS %s\r\n", o.password);
	if (!rcmd(&r, cmd, line, sizeof(line)))
		goto out;
	if (!rcmd(&r, "STAT\r\n", line, sizeof(line)))
		goto out;
	if (sscanf(line, "+OK %llu %llu", &stat_n, &stat_size) != 2) {
		fail("retr: bad STAT answer: %s", line);
		goto out;
	}
	if (!rcmd(&r, "LIST\r\n", line, sizeof(line)))
		goto out;
	/* Scan listing lines never start with '.': no unstuffing. */
	for (;;) {
		if (!rline(&r, line, sizeof(line)))
			goto out;
		if (strcmp(line, ".") == 0)
			break;
		list_line(line);
		if (list_bad)
			break;
	}
	if (list_bad || list_n != stat_n ||
	    (o.expect_count >= 0 && (long)stat_n != o.expect_count)) {
		fail("retr: LIST has %zu messages%s, STAT %llu", list_n,
		     list_bad ? " (malformed)" : "", stat_n);
		goto out;
	}
	if (o.expect_size >= 0 && (long long)stat_size != o.expect_size) {
		fail("retr: STAT says %llu octets, expected %lld", stat_size,
		     o.expect_size);
		goto out;
	}
	{
		uint64_t sum = 0;

		for (size_t i = 0; i < list_n; i++)
			sum += list_sizes[i];
		if (sum != stat_size) {
			fail("retr: LIST sizes add up to %llu, STAT says %llu",
			     (unsigned long long)sum, stat_size);
			goto out;
		}
	}
	t0 = now_ns();
	if (o.pipeline) {
		/* All commands at once, in slices the socket takes without
		 * blocking; answers are read in between. */
		size_t sent = 0, got = 0;
		char out[16384];

		while (got < list_n) {
			size_t olen = 0;

			while (sent < list_n && olen + 32 < sizeof(out) &&
			       sent - got < 4096)
				olen += (size_t)snprintf(out + olen,
					sizeof(out) - olen, "RETR %zu\r\n",
					++sent);
			if (olen > 0 && send_all(r.fd, out, olen) < 0) {
				fail("retr: send: %s", strerror(errno));
				goto out;
			}
			/* Read answers until half the window is answered. */
			while (got < list_n &&
			       (sent == list_n || sent - got > 2048)) {
				if (!retr_answer(&r, ++got, &wire))
					goto out;
			}
		}
	} else {
		for (size_t i = 1; i <= list_n; i++) {
			uint64_t a = now_ns();

			snprintf(cmd, sizeof(cmd), "RETR %zu\r\n", i);
			if (send_all(r.fd, cmd, strlen(cmd)) < 0) {
				fail("retr: send: %s", strerror(errno));
				goto out;
			}
			if (!retr_answer(&r, i, &wire))
				goto out;
			lat_add(&lat, now_ns() - a);
		}
	}
	t1 = now_ns();
	if (!rcmd(&r, "QUIT\r\n", line, sizeof(line)))
		goto out;
	{
		double secs = (double)(t1 - t0) / 1e9;

		printf("mode=retr pipeline=%d messages=%zu bytes=%" PRIu64
		       " seconds=%.4f mbps=%.1f errors=%lu", o.pipeline ? 1 : 0,
		       list_n, wire, secs, (double)wire / secs / 1e6, errors);
		if (!o.pipeline)
			lat_print(&lat);
		printf("\n");
	}
out:
	if (errors > 0)
		printf("mode=retr errors=%lu\n", errors);
	close(r.fd);
	free(r.buf);
	free(lat.v);
	free(list_sizes);
	return errors > 0 ? 1 : 0;
}

/* ---- command line --------------------------------------------------------- */

static void
usage(void)
{
	fprintf(stderr,
		"usage: loadgen login|retr|idle [--host IP] [--port N]\n"
		"         [--prefix P] [--user U] [--password PW] [--clients N]\n"
		"         [--duration S] [--sessions N] [--pipeline]\n"
		"         [--expect-count N] [--expect-size N] [--timeout S]\n"
		"         [--ramp N]\n");
	exit(2);
}

static uint64_t
num_arg(const char *s, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > max)
		die("bad number: %s", s);
	return v;
}

static double
secs_arg(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= 0 && v <= 86400))
		die("bad duration: %s", s);
	return v;
}

int
main(int argc, char **argv)
{
	struct rlimit rl;
	int rc;

	if (argc < 2)
		usage();
	o.mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--pipeline") == 0) {
			o.pipeline = true;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--host") == 0) o.host = v;
		else if (strcmp(a, "--port") == 0) o.port = (int)num_arg(v, 65535);
		else if (strcmp(a, "--prefix") == 0) o.prefix = v;
		else if (strcmp(a, "--user") == 0) o.user = v;
		else if (strcmp(a, "--password") == 0) o.password = v;
		else if (strcmp(a, "--clients") == 0)
			o.clients = (unsigned int)num_arg(v, MAX_CLIENTS);
		else if (strcmp(a, "--duration") == 0) o.duration = secs_arg(v);
		else if (strcmp(a, "--sessions") == 0)
			o.sessions = num_arg(v, UINT32_MAX);
		else if (strcmp(a, "--timeout") == 0) o.timeout = secs_arg(v);
		else if (strcmp(a, "--expect-count") == 0)
			o.expect_count = (long)num_arg(v, MAX_MESSAGES);
		else if (strcmp(a, "--expect-size") == 0)
			o.expect_size = (long long)num_arg(v, INT64_MAX);
		else if (strcmp(a, "--ramp") == 0)
			o.ramp = (unsigned int)num_arg(v, MAX_CLIENTS);
		else
			usage();
	}
	if (o.clients == 0 || o.ramp == 0 || o.timeout <= 0)
		usage();
	memset(&server, 0, sizeof(server));
	server.sin_family = AF_INET;
	server.sin_port = htons((uint16_t)o.port);
	if (inet_pton(AF_INET, o.host, &server.sin_addr) != 1)
		die("bad IPv4 address: %s", o.host);
	/* Idle mode holds one socket per session. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	if (strcmp(o.mode, "login") == 0) {
		if (o.duration == 0 && o.sessions == 0)
			o.sessions = 1000;
		rc = run_login();
	} else if (strcmp(o.mode, "retr") == 0) {
		rc = run_retr();
	} else if (strcmp(o.mode, "idle") == 0) {
		rc = run_idle();
	} else {
		usage();
	}
	close(ep);
	fflush(stdout);
	return rc;
}
