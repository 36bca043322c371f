/* session.c: one POP3 session: the protocol loop, the dispatcher that
 * checks state and arity for every command, the one place that writes
 * +OK/-ERR replies, and the session log line. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "loader.h"
#include "log.h"
#include "session.h"
#include "tls.h"
#include "util.h"

const char *
session_state_name(enum session_state st)
{
	switch (st) {
	case STATE_AUTHORIZATION: return "AUTHORIZATION";
	case STATE_TRANSACTION: return "TRANSACTION";
	case STATE_UPDATE: return "UPDATE";
	}
	return "?";
}

void
session_enter_state(struct poplar_session *s, enum session_state st)
{
	log_msg(LOG_DEBUG, "state %s -> %s", session_state_name(s->state),
		session_state_name(st));
	s->state = st;
}

void
session_reply(struct poplar_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->reply, sizeof(s->reply), fmt, ap);
	va_end(ap);
}

/* The listener's modules, in its order, with per-session state. */
static void
modules_start(struct poplar_session *s)
{
	const struct listener_config *listener = s->listener;

	s->nmodules = 0;
	for (size_t i = 0; i < listener->nauth &&
	     s->nmodules < sizeof(s->modules) / sizeof(s->modules[0]); i++) {
		struct loaded_module *m = module_find(listener->auth[i]);
		void *ms = NULL;

		if (m == NULL)
			continue;
		if (m->desc->session_start != NULL &&
		    m->desc->session_start(m->mod, s, &ms) < 0) {
			log_msg(LOG_ERR, "module %s: session start failed",
				m->name);
			continue;
		}
		s->modules[s->nmodules] = m;
		s->module_sess[s->nmodules] = ms;
		s->nmodules++;
	}
}

static void
modules_end(struct poplar_session *s)
{
	for (size_t i = 0; i < s->nmodules; i++) {
		const struct poplar_module *d = s->modules[i]->desc;

		if (d->session_end != NULL)
			d->session_end(s->modules[i]->mod, s->module_sess[i]);
		s->module_sess[i] = NULL;
	}
	s->nmodules = 0;
}

void
session_reset_modules(struct poplar_session *s)
{
	modules_end(s);
	modules_start(s);
}

struct poplar_session *
session_new(const struct config *cfg, const struct listener_config *listener,
	    struct pio *io, const char *peer, const char *peer_port)
{
	struct poplar_session *s = xcalloc(1, sizeof(*s));

	s->cfg = cfg;
	s->listener = listener;
	s->io = io;
	s->state = STATE_AUTHORIZATION;
	s->start_ms = now_ms();
	strlcpy_p(s->peer, peer != NULL ? peer : "local", sizeof(s->peer));
	strlcpy_p(s->peer_port, peer_port != NULL ? peer_port : "",
		  sizeof(s->peer_port));
	s->end_reason = "eof";
	s->fd_in = s->fd_out = -1;
	s->trusted = network_match(listener->trusted, listener->ntrusted,
				   s->peer);
	pio_set_write_timeout(io, (int)cfg->idle_timeout * 1000);

	modules_start(s);
	return s;
}

void
session_free(struct poplar_session **sp)
{
	struct poplar_session *s = *sp;

	if (s == NULL)
		return;
	modules_end(s);
	maildrop_close(&s->md);
	session_lock_release(&s->lock);
	free(s);
	*sp = NULL;
}

static void
log_session_end(struct poplar_session *s)
{
	char peer[80], user[160], method[64];
	uint64_t ms = now_ms() - s->start_ms;

	log_msg(LOG_INFO,
		"session-end peer=%s listener=%s user=%s method=%s retr=%u "
		"retr_bytes=%llu deleted=%u duration=%llu.%03llu reason=%s "
		"tls=%s cipher=%s",
		log_value(peer, sizeof(peer), s->peer), s->listener->name,
		log_value(user, sizeof(user), s->user[0] ? s->user : "-"),
		log_value(method, sizeof(method),
			  s->method[0] ? s->method : "-"),
		s->retr_count, (unsigned long long)s->retr_bytes,
		s->deleted_count, (unsigned long long)(ms / 1000),
		(unsigned long long)(ms % 1000), s->end_reason,
		tls_session_version(s), tls_session_cipher(s));
}

static void
send_greeting(struct poplar_session *s)
{
	for (size_t i = 0; i < s->nmodules && s->greeting_token[0] == '\0';
	     i++) {
		const struct poplar_module *d = s->modules[i]->desc;

		if (d->greeting != NULL)
			d->greeting(s->modules[i]->mod, s->module_sess[i], s,
				    s->greeting_token,
				    sizeof(s->greeting_token));
	}
	if (s->greeting_token[0] != '\0')
		pio_printf(s->io, "+OK Poplar ready %s\r\n", s->greeting_token);
	else
		pio_printf(s->io, "+OK Poplar ready\r\n");
}

/* Pre-greeting exchanges (KPOP).  false: close the connection. */
static bool
run_connect_hooks(struct poplar_session *s)
{
	for (size_t i = 0; i < s->nmodules; i++) {
		const struct poplar_module *d = s->modules[i]->desc;
		struct poplar_outcome_info out;
		enum poplar_outcome r;

		if (d->connect == NULL)
			continue;
		memset(&out, 0, sizeof(out));
		r = d->connect(s->modules[i]->mod, s->module_sess[i], s, &out);
		if (r == POPLAR_DISCONNECT) {
			s->end_reason = "pre-auth-failed";
			return false;
		}
		if (r == POPLAR_LOGIN)
			strlcpy_p(s->preauth_user, out.user,
				  sizeof(s->preauth_user));
	}
	return true;
}

int
session_tls_timeout_ms(const struct poplar_session *s)
{
	/* A handshake is a few round trips: a minute at most, shorter if
	 * the idle timeout is shorter. */
	unsigned int sec = s->cfg->idle_timeout < 60 ? s->cfg->idle_timeout
						     : 60;

	return (int)sec * 1000;
}

void
session_serve(struct poplar_session *s)
{
	char line[POP3_CMD_MAX + 1];
	int timeout_ms = (int)s->cfg->idle_timeout * 1000;

	if (s->listener->tls == TLS_MODE_IMPLICIT) {
		const char *error;

		if (tls_start(s, s->fd_in, s->fd_out,
			      session_tls_timeout_ms(s), &error) < 0) {
			char peer[80];

			log_msg(LOG_NOTICE, "tls-fail peer=%s listener=%s "
				"reason=\"%s\"", log_value(peer, sizeof(peer),
							  s->peer),
				s->listener->name, error);
			s->end_reason = "tls-failed";
			return;
		}
	}
	if (!run_connect_hooks(s))
		return;
	send_greeting(s);
	for (;;) {
		size_t len;
		enum pio_status st = pio_read_line(s->io, line, sizeof(line) - 1,
						   &len, timeout_ms);
		bool go_on = true;

		switch (st) {
		case PIO_LINE:
			go_on = session_dispatch(s, line);
			break;
		case PIO_TOOLONG:
			session_reply(s, "line too long (limit %d octets)",
				      POP3_CMD_MAX);
			pio_printf(s->io, "-ERR %s\r\n", s->reply);
			go_on = ++s->bad_commands < s->cfg->max_bad_commands;
			if (!go_on)
				s->end_reason = "too-many-bad-commands";
			break;
		case PIO_NUL:
			pio_printf(s->io, "-ERR NUL byte in command\r\n");
			go_on = ++s->bad_commands < s->cfg->max_bad_commands;
			if (!go_on)
				s->end_reason = "too-many-bad-commands";
			break;
		case PIO_TIMEOUT:
			pio_printf(s->io, "-ERR idle timeout, closing\r\n");
			s->end_reason = "timeout";
			go_on = false;
			break;
		case PIO_EOF:
			s->end_reason = "eof";
			go_on = false;
			break;
		case PIO_ERROR:
			s->end_reason = "error";
			go_on = false;
			break;
		}
		/* The line may have held a password. */
		secure_wipe(line, sizeof(line));
		if (!go_on)
			break;
	}
	pio_flush(s->io);
}

void
session_run(const struct config *cfg, const struct listener_config *listener,
	    int fd_in, int fd_out, const char *peer, const char *peer_port)
{
	struct pio *io = pio_new_fd(fd_in, fd_out);
	struct poplar_session *s = session_new(cfg, listener, io, peer,
					       peer_port);

	s->fd_in = fd_in;
	s->fd_out = fd_out;
	session_serve(s);
	log_session_end(s);
	session_free(&s);
	pio_free(&io);
}

/* Split the arguments after a command name.  p is "" or starts with the
 * single space that separates the name from the first argument; RFC 1939
 * separates arguments by single spaces, so an empty argument (two spaces
 * in a row, a trailing space) is a syntax error.  With rest, the last
 * argument is everything after the previous one (PASS secrets may contain
 * spaces).  Returns the word count, or -1 for a syntax error or more
 * words than max. */
int
session_split_args(char *p, char **argv, unsigned int max, bool rest)
{
	unsigned int n = 0;

	if (*p == '\0')
		return 0;
	for (;;) {
		char *word = p + 1, *end;     /* p is on a separator */

		if (n == max || *word == '\0' || *word == ' ')
			return -1;
		argv[n++] = word;
		if (rest && n == max)
			return (int)n;
		end = strchr(word, ' ');
		if (end == NULL)
			return (int)n;
		/* Terminate the word; the terminator stands where the
		 * separator was, so the next round starts after it. */
		*end = '\0';
		p = end;
	}
}

/* Write the reply for result; counts bad commands.  false: close. */
static bool
finish(struct poplar_session *s, enum cmd_result r)
{
	switch (r) {
	case CMD_OK:
		s->bad_commands = 0;
		pio_printf(s->io, "+OK%s%s\r\n", s->reply[0] ? " " : "",
			   s->reply);
		return true;
	case CMD_ERR:
		pio_printf(s->io, "-ERR%s%s\r\n", s->reply[0] ? " " : "",
			   s->reply);
		if (++s->bad_commands >= s->cfg->max_bad_commands) {
			s->end_reason = "too-many-bad-commands";
			return false;
		}
		return true;
	case CMD_QUIET:
		s->bad_commands = 0;
		return true;
	case CMD_CLOSE:
		return false;
	}
	return false;
}

bool
session_dispatch(struct poplar_session *s, char *line)
{
	char name[16];
	char *argv[POP3_ARGS_MAX];
	char *p = line;
	size_t n = 0;
	const struct command *cmd;
	enum cmd_result r;
	int argc;

	s->reply[0] = '\0';
	while (*p == ' ')
		p++;
	while (p[n] != '\0' && p[n] != ' ') {
		if (n + 1 >= sizeof(name)) {
			session_reply(s, "unknown command");
			return finish(s, CMD_ERR);
		}
		name[n] = (char)toupper((unsigned char)p[n]);
		n++;
	}
	name[n] = '\0';
	p += n;
	if (n == 0) {
		session_reply(s, "empty command");
		return finish(s, CMD_ERR);
	}

	cmd = command_find(name);
	if (cmd == NULL) {
		if (s->state == STATE_AUTHORIZATION &&
		    auth_dispatch(s, name, p, &r))
			return finish(s, r);
		session_reply(s, "unknown command");
		return finish(s, CMD_ERR);
	}
	if ((cmd->states & s->state) == 0) {
		session_reply(s, "%s is not valid in the %s state", name,
			      session_state_name(s->state));
		return finish(s, CMD_ERR);
	}
	argc = session_split_args(p, argv, cmd->max_args, false);
	if (argc < 0 || (unsigned int)argc < cmd->min_args) {
		session_reply(s, "syntax error or wrong number of arguments "
			      "for %s", name);
		return finish(s, CMD_ERR);
	}
	r = cmd->handler(s, (unsigned int)argc, argv);
	return finish(s, r);
}
