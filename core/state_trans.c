/* state_trans.c: the TRANSACTION state: STAT, LIST, UIDL, RETR, TOP,
 * DELE, RSET, NOOP.  Runs with the user's privileges only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "crlf.h"
#include "log.h"
#include "session.h"
#include "util.h"

/* Raw bytes read per step of RETR; the converted output (at most twice
 * as large) must fit the output buffer several times over, so that
 * writes stay large. */
#define RETR_CHUNK (32 * 1024)
_Static_assert(2 * RETR_CHUNK + 1 <= PIO_OUTBUF_SIZE / 2,
	       "RETR chunks must leave the output buffer room to fill");

/* Parse a message number: 1..count, not deleted.  Sets the reply. */
static struct maildrop_msg *
get_msg(struct poplar_session *s, const char *arg, size_t *idx_r)
{
	uint64_t n;

	if (parse_uint(arg, 1, s->md->count, &n) < 0) {
		session_reply(s, "no such message");
		return NULL;
	}
	if (s->md->msgs[n - 1].deleted) {
		session_reply(s, "message %llu already deleted",
			      (unsigned long long)n);
		return NULL;
	}
	*idx_r = (size_t)(n - 1);
	return &s->md->msgs[n - 1];
}

enum cmd_result
cmd_noop(struct poplar_session *s, unsigned int argc, char **argv)
{
	(void)s;
	(void)argc;
	(void)argv;
	return CMD_OK;
}

enum cmd_result
cmd_stat(struct poplar_session *s, unsigned int argc, char **argv)
{
	size_t count = 0;
	uint64_t size = 0;

	(void)argc;
	(void)argv;
	for (size_t i = 0; i < s->md->count; i++) {
		if (!s->md->msgs[i].deleted) {
			count++;
			size += s->md->msgs[i].size;
		}
	}
	session_reply(s, "%zu %llu", count, (unsigned long long)size);
	return CMD_OK;
}

enum cmd_result
cmd_list(struct poplar_session *s, unsigned int argc, char **argv)
{
	struct maildrop_msg *m;
	size_t idx;

	if (argc == 1) {
		if ((m = get_msg(s, argv[0], &idx)) == NULL)
			return CMD_ERR;
		session_reply(s, "%zu %llu", idx + 1,
			      (unsigned long long)m->size);
		return CMD_OK;
	}
	pio_printf(s->io, "+OK scan listing follows\r\n");
	for (size_t i = 0; i < s->md->count; i++)
		if (!s->md->msgs[i].deleted)
			pio_printf(s->io, "%zu %llu\r\n", i + 1,
				   (unsigned long long)s->md->msgs[i].size);
	pio_write(s->io, ".\r\n", 3);
	return CMD_QUIET;
}

enum cmd_result
cmd_uidl(struct poplar_session *s, unsigned int argc, char **argv)
{
	struct maildrop_msg *m;
	size_t idx;

	if (argc == 1) {
		if ((m = get_msg(s, argv[0], &idx)) == NULL)
			return CMD_ERR;
		char buf[POP3_UIDL_MAX + 1];

		session_reply(s, "%zu %s", idx + 1,
			      maildrop_uidl(s->md, idx, buf));
		return CMD_OK;
	}
	pio_printf(s->io, "+OK unique-id listing follows\r\n");
	for (size_t i = 0; i < s->md->count; i++) {
		char buf[POP3_UIDL_MAX + 1];

		if (!s->md->msgs[i].deleted)
			pio_printf(s->io, "%zu %s\r\n", i + 1,
				   maildrop_uidl(s->md, i, buf));
	}
	pio_write(s->io, ".\r\n", 3);
	return CMD_QUIET;
}

/* Stream message idx, converted and stuffed, ending with ".CRLF".
 * body_lines: -1 for RETR, the TOP count otherwise. */
static enum cmd_result
send_message(struct poplar_session *s, size_t idx, long body_lines)
{
	struct maildrop_msg *m = &s->md->msgs[idx];
	struct crlf_stuff st;
	unsigned char in[RETR_CHUNK];
	const char *error = NULL;
	uint64_t left = m->raw_size;
	off_t off = m->offset;
	int fd;

	if (s->md->driver->msg_open(s->md, idx, &fd, &error) < 0) {
		log_msg(LOG_ERR, "cannot open message: user=%s msg=%zu error=%s",
			s->user, idx + 1, error ? error : "unknown");
		session_reply(s, "[SYS/TEMP] cannot read message %zu", idx + 1);
		return CMD_ERR;
	}
	pio_printf(s->io, "+OK %llu octets\r\n", (unsigned long long)m->size);
	crlf_stuff_init(&st, body_lines);
	while (left > 0 && !st.done) {
		size_t want = left < sizeof(in) ? (size_t)left : sizeof(in);
		ssize_t n = pread(fd, in, want, off);
		unsigned char *out;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* The message shrank or vanished under us: the reply
			 * cannot be mended any more, so end the session. */
			log_msg(LOG_ERR, "message changed while sending: "
				"user=%s msg=%zu", s->user, idx + 1);
			s->md->driver->msg_close(s->md, idx, fd);
			s->end_reason = "error";
			return CMD_CLOSE;
		}
		out = pio_reserve(s->io, 2 * (size_t)n + 1);
		if (out == NULL) {
			s->md->driver->msg_close(s->md, idx, fd);
			s->end_reason = pio_write_timed_out(s->io) ? "timeout"
								   : "eof";
			return CMD_CLOSE;
		}
		pio_commit(s->io, crlf_stuff_feed(&st, in, (size_t)n, out));
		left -= (uint64_t)n;
		off += n;
	}
	s->md->driver->msg_close(s->md, idx, fd);
	{
		unsigned char tail[8];
		size_t n = crlf_stuff_finish(&st, tail);

		pio_write(s->io, tail, n);
	}
	if (body_lines < 0)
		s->retr_bytes += st.sent;
	return CMD_QUIET;
}

enum cmd_result
cmd_retr(struct poplar_session *s, unsigned int argc, char **argv)
{
	enum cmd_result r;
	size_t idx;

	(void)argc;
	if (get_msg(s, argv[0], &idx) == NULL)
		return CMD_ERR;
	r = send_message(s, idx, -1);
	if (r == CMD_QUIET)
		s->retr_count++;
	return r;
}

enum cmd_result
cmd_top(struct poplar_session *s, unsigned int argc, char **argv)
{
	uint64_t lines;
	size_t idx;

	(void)argc;
	if (get_msg(s, argv[0], &idx) == NULL)
		return CMD_ERR;
	if (parse_uint(argv[1], 0, 0x7fffffff, &lines) < 0) {
		session_reply(s, "invalid number of lines");
		return CMD_ERR;
	}
	return send_message(s, idx, (long)lines);
}

enum cmd_result
cmd_dele(struct poplar_session *s, unsigned int argc, char **argv)
{
	struct maildrop_msg *m;
	size_t idx;

	(void)argc;
	if ((m = get_msg(s, argv[0], &idx)) == NULL)
		return CMD_ERR;
	m->deleted = true;
	s->deleted_marked++;
	session_reply(s, "message %zu deleted", idx + 1);
	return CMD_OK;
}

enum cmd_result
cmd_rset(struct poplar_session *s, unsigned int argc, char **argv)
{
	(void)argc;
	(void)argv;
	for (size_t i = 0; i < s->md->count; i++)
		s->md->msgs[i].deleted = false;
	s->deleted_marked = 0;
	session_reply(s, "maildrop has %zu message%s (%llu octets)",
		      s->md->count, s->md->count == 1 ? "" : "s",
		      (unsigned long long)s->md->total_size);
	return CMD_OK;
}
