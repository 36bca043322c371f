/* state_auth.c: the AUTHORIZATION state: the command table, CAPA, QUIT,
 * routing of login commands to modules, and completing a login (user
 * lookup, privilege drop, session lock, maildrop).
 *
 * Runs as root when poplard was started as root: everything before
 * privdrop_to_user() in session_login() handles client input with root
 * privileges, so it only parses bounded lines and calls the modules. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "loader.h"
#include "log.h"
#include "privdrop.h"
#include "session.h"
#include "tls.h"
#include "userdb.h"
#include "util.h"

#define ANY (STATE_AUTHORIZATION | STATE_TRANSACTION)
#define TRANS STATE_TRANSACTION

/* The core commands.  Login commands (USER, PASS, APOP, AUTH) belong to
 * modules: see auth_dispatch(). */
const struct command session_commands[] = {
	{ "CAPA", ANY, 0, 0, cmd_capa },
	{ "STLS", STATE_AUTHORIZATION, 0, 0, cmd_stls },
	{ "QUIT", ANY, 0, 0, cmd_quit },
	{ "NOOP", TRANS, 0, 0, cmd_noop },
	{ "STAT", TRANS, 0, 0, cmd_stat },
	{ "LIST", TRANS, 0, 1, cmd_list },
	{ "UIDL", TRANS, 0, 1, cmd_uidl },
	{ "RETR", TRANS, 1, 1, cmd_retr },
	{ "TOP", TRANS, 2, 2, cmd_top },
	{ "DELE", TRANS, 1, 1, cmd_dele },
	{ "RSET", TRANS, 0, 0, cmd_rset },
	{ NULL, 0, 0, 0, NULL }
};

const struct command *
command_find(const char *name)
{
	for (const struct command *c = session_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

bool
plaintext_allowed(const struct poplar_session *s)
{
	switch (s->listener->plaintext_auth) {
	case PLAINTEXT_ALWAYS:
		return true;
	case PLAINTEXT_AFTER_TLS:
		return (s->flags & SESSION_FLAG_TLS) != 0 || s->trusted;
	case PLAINTEXT_NEVER:
		return false;
	}
	return false;
}

static void
capa_emit(struct poplar_session *s, const char *line)
{
	/* Not pio_printf: its bounded buffer would cut a long line (a
	 * SASL list) and lose the CRLF. */
	pio_write(s->io, line, strlen(line));
	pio_write(s->io, "\r\n", 2);
}

/* STLS may be used now (RFC 2595: AUTHORIZATION state, not yet TLS). */
static bool
stls_available(const struct poplar_session *s)
{
	return s->listener->tls == TLS_MODE_STARTTLS &&
	       s->state == STATE_AUTHORIZATION &&
	       (s->flags & SESSION_FLAG_TLS) == 0 && s->fd_in >= 0 &&
	       tls_available();
}

enum cmd_result
cmd_stls(struct poplar_session *s, unsigned int argc, char **argv)
{
	const char *error;

	(void)argc;
	(void)argv;
	if (!stls_available(s)) {
		session_reply(s, "%s", (s->flags & SESSION_FLAG_TLS)
			      ? "TLS is already active"
			      : "STLS is not offered here");
		return CMD_ERR;
	}
	pio_printf(s->io, "+OK begin TLS negotiation\r\n");
	if (pio_flush(s->io) < 0) {
		s->end_reason = "eof";
		return CMD_CLOSE;
	}
	if (tls_start(s, s->fd_in, s->fd_out, session_tls_timeout_ms(s),
		      &error) < 0) {
		char peer[80];

		log_msg(LOG_NOTICE, "tls-fail peer=%s listener=%s reason=\"%s\"",
			log_value(peer, sizeof(peer), s->peer),
			s->listener->name, error);
		s->end_reason = "tls-failed";
		return CMD_CLOSE;
	}
	/* Forget everything from before TLS (RFC 2595 section 4). */
	session_reset_modules(s);
	s->bad_commands = 0;
	return CMD_QUIET;
}

enum cmd_result
cmd_capa(struct poplar_session *s, unsigned int argc, char **argv)
{
	(void)argc;
	(void)argv;
	pio_printf(s->io, "+OK capability list follows\r\n"
		   "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
		   "PIPELINING\r\n");
	if (stls_available(s))
		pio_printf(s->io, "STLS\r\n");
	if (s->state == STATE_AUTHORIZATION) {
		for (size_t i = 0; i < s->nmodules; i++) {
			const struct poplar_module *d = s->modules[i]->desc;

			if (d->capa != NULL)
				d->capa(s->modules[i]->mod, s->module_sess[i],
					s, capa_emit);
		}
	}
	pio_printf(s->io, "IMPLEMENTATION Poplar\r\n.\r\n");
	return CMD_QUIET;
}

enum cmd_result
cmd_quit(struct poplar_session *s, unsigned int argc, char **argv)
{
	unsigned int deleted = 0;
	enum maildrop_error err = MAILDROP_OK;
	const char *error = NULL;

	(void)argc;
	(void)argv;
	s->end_reason = "quit";
	if (s->state != STATE_TRANSACTION) {
		pio_printf(s->io, "+OK bye\r\n");
		return CMD_CLOSE;
	}
	session_enter_state(s, STATE_UPDATE);
	if (s->deleted_marked > 0 &&
	    s->md->driver->commit(s->md, &deleted, &err, &error) < 0) {
		s->deleted_count = deleted;
		log_msg(LOG_ERR, "update failed: user=%s error=%s", s->user,
			error != NULL ? error : "unknown");
		if (deleted == 0)
			pio_printf(s->io, "-ERR [SYS/TEMP] maildrop could not "
				   "be updated, nothing was deleted\r\n");
		else
			pio_printf(s->io, "-ERR [SYS/TEMP] only %u of the "
				   "deleted messages could be removed\r\n",
				   deleted);
		s->end_reason = "update-failed";
		return CMD_CLOSE;
	}
	s->deleted_count = deleted;
	/* Release the maildrop before the reply: a client that logs in
	 * again right after +OK must not find it in use. */
	maildrop_close(&s->md);
	session_lock_release(&s->lock);
	pio_printf(s->io, "+OK bye, %u message%s deleted\r\n", deleted,
		   deleted == 1 ? "" : "s");
	return CMD_CLOSE;
}

void
session_log_auth_failure(struct poplar_session *s, const char *user,
			 const char *method, const char *reason)
{
	char peer[80], u[200], r[200];

	log_msg(LOG_NOTICE,
		"auth-fail peer=%s listener=%s user=%s method=%s reason=%s",
		log_value(peer, sizeof(peer), s->peer), s->listener->name,
		log_value(u, sizeof(u), user != NULL && *user ? user : "-"),
		method, log_value(r, sizeof(r), reason ? reason : "unknown"));
}

/* Every failed login looks the same to the client: same text, same
 * delay, whatever the reason. */
static enum cmd_result
login_failed(struct poplar_session *s, const char *user, const char *method,
	     const char *reason)
{
	session_log_auth_failure(s, user, method, reason);
	if (s->cfg->auth_fail_delay > 0) {
		pio_flush(s->io);
		sleep(s->cfg->auth_fail_delay);
	}
	session_reply(s, "[AUTH] authentication failed");
	pio_printf(s->io, "-ERR %s\r\n", s->reply);
	if (++s->auth_failures >= s->cfg->max_auth_failures) {
		s->end_reason = "too-many-auth-failures";
		return CMD_CLOSE;
	}
	return CMD_QUIET;
}

/* After the privilege drop: a failure ends the session, since this
 * process can no longer act for another user. */
static enum cmd_result
login_abort(struct poplar_session *s, const char *code, const char *text,
	    const char *why)
{
	log_msg(LOG_ERR, "login-error peer=%s listener=%s user=%s error=%s",
		s->peer, s->listener->name, s->user, why);
	pio_printf(s->io, "-ERR %s %s\r\n", code, text);
	s->end_reason = "login-error";
	return CMD_CLOSE;
}

enum cmd_result
session_login(struct poplar_session *s, const char *user, const char *method,
	      const char *detail)
{
	struct userdb_user u;
	const struct maildrop_driver *drv;
	const char *error = NULL;
	char path[4096], lockpath[4200];
	enum maildrop_error err;
	struct stat st;
	uid_t uid;
	gid_t gid;
	int r;

	for (size_t i = 0; i < s->nmodules; i++) {
		const struct poplar_module *d = s->modules[i]->desc;
		const char *why = NULL;

		if (d->login_veto != NULL &&
		    d->login_veto(s->modules[i]->mod, user, method, &why))
			return login_failed(s, user, method,
					    why ? why : "refused by policy");
	}
	r = userdb_lookup(user, &u, &error);
	if (r < 0) {
		log_msg(LOG_ERR, "userdb lookup failed: user=%s error=%s",
			user, error);
		pio_printf(s->io, "-ERR [SYS/TEMP] user database unavailable\r\n");
		return CMD_QUIET;
	}
	if (r == 0)
		return login_failed(s, user, method, "no such user in userdb");

	strlcpy_p(s->user, u.name, sizeof(s->user));
	strlcpy_p(s->method, method, sizeof(s->method));
	strlcpy_p(s->auth_detail, detail != NULL ? detail : "",
		  sizeof(s->auth_detail));

	uid = u.uid;
	gid = u.gid;
	if (uid == (uid_t)-1 && s->cfg->userdb_default_uid >= 0)
		uid = (uid_t)s->cfg->userdb_default_uid;
	if (gid == (gid_t)-1 && s->cfg->userdb_default_gid >= 0)
		gid = (gid_t)s->cfg->userdb_default_gid;
	if (privdrop_to_user(u.name, uid, gid,
			     s->cfg->maildrop_mail_gid >= 0 ?
			     (gid_t)s->cfg->maildrop_mail_gid : (gid_t)-1,
			     s->cfg->userdb_groups ? PRIVDROP_GROUPS : 0,
			     &error) < 0)
		return login_abort(s, "[SYS/PERM]", "cannot serve this user",
				   error);
	/* No other user's entry (or password hash) stays in a process that
	 * now runs as this user. */
	userdb_forget();

	drv = maildrop_expand(s->cfg->maildrop_location, u.name, u.home, path,
			      sizeof(path), &error);
	if (drv == NULL)
		return login_abort(s, "[SYS/PERM]", "no maildrop", error);
	if (drv == &maildrop_mbox) {
		char statedir[4096];

		if (s->cfg->maildrop_state_dir != NULL &&
		    maildrop_expand_path(s->cfg->maildrop_state_dir, u.name,
					 u.home, statedir, sizeof(statedir),
					 &error) < 0)
			return login_abort(s, "[SYS/PERM]", "no maildrop",
					   error);
		maildrop_mbox_configure(s->cfg->maildrop_state_dir != NULL ?
					statedir : NULL,
					s->cfg->maildrop_stale_age,
					s->cfg->maildrop_lock_timeout);
	}
	if (drv->lock_path(path, lockpath, sizeof(lockpath)) < 0)
		return login_abort(s, "[SYS/TEMP]", "cannot lock maildrop",
				   "lock path");
	r = session_lock_try(lockpath, &s->lock, &error);
	if (r < 0)
		return login_abort(s, "[SYS/TEMP]", "cannot lock maildrop",
				   error);
	if (r == 0) {
		log_msg(LOG_NOTICE, "in-use peer=%s listener=%s user=%s",
			s->peer, s->listener->name, s->user);
		pio_printf(s->io, "-ERR [IN-USE] maildrop is in use by "
			   "another session\r\n");
		s->end_reason = "in-use";
		return CMD_CLOSE;
	}
	/* Serve only what the user we now run as owns. */
	if (stat(path, &st) == 0 && st.st_uid != geteuid())
		return login_abort(s, "[SYS/PERM]", "maildrop not owned by user",
				   "maildrop owner mismatch");

	s->md = maildrop_open(drv, path,
			      strcmp(s->cfg->maildrop_cache, "no") == 0
			      ? MAILDROP_NO_CACHE : 0, &err, &error);
	if (s->md == NULL)
		return login_abort(s, err == MAILDROP_ERR_PERM ? "[SYS/PERM]"
				   : "[SYS/TEMP]", "cannot open maildrop",
				   error);
	session_enter_state(s, STATE_TRANSACTION);
	{
		char peer[80], uv[160];

		log_msg(LOG_INFO, "login peer=%s listener=%s user=%s method=%s%s%s",
			log_value(peer, sizeof(peer), s->peer),
			s->listener->name,
			log_value(uv, sizeof(uv), s->user), s->method,
			s->auth_detail[0] ? " " : "", s->auth_detail);
	}
	session_reply(s, "maildrop has %zu message%s (%llu octets)",
		      s->md->count, s->md->count == 1 ? "" : "s",
		      (unsigned long long)s->md->total_size);
	return CMD_OK;
}

bool
auth_dispatch(struct poplar_session *s, const char *name, char *args,
	      enum cmd_result *result_r)
{
	for (size_t i = 0; i < s->nmodules; i++) {
		const struct poplar_command *c = s->modules[i]->desc->commands;
		struct poplar_outcome_info out;
		char *argv[POP3_ARGS_MAX];
		int argc;

		for (; c != NULL && c->name != NULL; c++)
			if (strcmp(c->name, name) == 0)
				break;
		if (c == NULL || c->name == NULL)
			continue;

		if ((c->flags & POPLAR_CMD_PLAINTEXT) && !plaintext_allowed(s)) {
			session_reply(s, "[AUTH] plaintext authentication is "
				      "not allowed on this connection; use TLS");
			*result_r = CMD_ERR;
			return true;
		}
		argc = session_split_args(args, argv,
					  c->max_args < POP3_ARGS_MAX
					  ? c->max_args : POP3_ARGS_MAX,
					  (c->flags & POPLAR_CMD_REST) != 0);
		if (argc < 0 || (unsigned int)argc < c->min_args) {
			session_reply(s, "syntax error or wrong number of "
				      "arguments for %s", name);
			*result_r = CMD_ERR;
			return true;
		}
		memset(&out, 0, sizeof(out));
		out.method = s->modules[i]->name;
		switch (c->handler(s, s->module_sess[i], (unsigned int)argc,
				   argv, &out)) {
		case POPLAR_OK:
			session_reply(s, "%s", out.message ? out.message : "");
			*result_r = CMD_OK;
			break;
		case POPLAR_ERR:
			session_reply(s, "%s", out.message ? out.message : "");
			*result_r = CMD_ERR;
			break;
		case POPLAR_QUIET:
			*result_r = CMD_QUIET;
			break;
		case POPLAR_LOGIN:
			*result_r = session_login(s, out.user, out.method,
						  out.detail);
			break;
		case POPLAR_LOGIN_FAIL:
			*result_r = login_failed(s, out.user, out.method,
						 out.reason);
			break;
		case POPLAR_TEMPFAIL:
			log_msg(LOG_ERR, "auth-tempfail peer=%s listener=%s "
				"method=%s reason=%s", s->peer,
				s->listener->name, out.method,
				out.reason ? out.reason : "unknown");
			pio_printf(s->io, "-ERR [SYS/TEMP] %s\r\n",
				   out.message ? out.message
				   : "authentication service unavailable");
			*result_r = CMD_QUIET;
			break;
		case POPLAR_DISCONNECT:
			s->end_reason = "module-disconnect";
			*result_r = CMD_CLOSE;
			break;
		}
		return true;
	}
	return false;
}
