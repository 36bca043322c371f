/* session.h: one POP3 session: states, the command table, the loop.
 *
 * States follow RFC 1939: AUTHORIZATION -> TRANSACTION -> UPDATE.  Facts
 * that are not states (TLS active) are flag bits.  Every change of state
 * goes through session_enter_state(). */
#ifndef POPLAR_SESSION_H
#define POPLAR_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "maildrop.h"
#include "params.h"
#include "pio.h"
#include "../auth/poplar-module.h"

enum session_state {
	STATE_AUTHORIZATION = 0x1,
	STATE_TRANSACTION = 0x2,
	STATE_UPDATE = 0x4
};

/* What a core handler returns; session_dispatch writes the reply. */
enum cmd_result {
	CMD_OK,             /* "+OK reply" */
	CMD_ERR,            /* "-ERR reply" (a bad command: counted) */
	CMD_QUIET,          /* handler wrote everything itself */
	CMD_CLOSE           /* reply (if any) sent; end the session */
};

#define SESSION_FLAG_TLS 0x1u

struct loaded_module;

struct poplar_session {
	const struct config *cfg;
	const struct listener_config *listener;
	struct pio *io;
	enum session_state state;
	unsigned int flags;

	int fd_in, fd_out;              /* for TLS; -1 when unknown */
	bool trusted;                   /* peer in trusted_networks */
	char peer[64];                  /* "1.2.3.4" or "::1", or "local" */
	char peer_port[8];
	uint64_t start_ms;

	/* per-session data of each offered module, by listener auth order */
	struct loaded_module *modules[16];
	void *module_sess[16];
	size_t nmodules;
	/* identity established before the greeting (KPOP) */
	char preauth_user[POPLAR_USER_MAX + 1];

	char greeting_token[128];       /* APOP timestamp, or empty */

	/* after login */
	char user[POPLAR_USER_MAX + 1];
	char method[32];
	char auth_detail[POPLAR_DETAIL_MAX];
	struct maildrop *md;
	struct session_lock *lock;

	/* counters for the session log line */
	unsigned int retr_count;
	uint64_t retr_bytes;
	unsigned int deleted_marked;    /* DELE count pending */
	unsigned int deleted_count;     /* removed by UPDATE */
	unsigned int bad_commands;      /* consecutive */
	unsigned int auth_failures;
	const char *end_reason;

	/* reply text of the current handler */
	char reply[POP3_REPLY_MAX];
};

/* One row of the core command table. */
struct command {
	const char *name;
	unsigned int states;            /* STATE_* bits where it is legal */
	unsigned int min_args;
	unsigned int max_args;
	enum cmd_result (*handler)(struct poplar_session *s, unsigned int argc,
				   char **argv);
};

/* Serve one connection on fd_in/fd_out until it ends; returns when the
 * session is over (the caller exits).  peer may be NULL (stdin). */
void session_run(const struct config *cfg,
		 const struct listener_config *listener, int fd_in,
		 int fd_out, const char *peer, const char *peer_port);

/* Create/destroy a session on an existing pio (unit tests drive these). */
struct poplar_session *session_new(const struct config *cfg,
				   const struct listener_config *listener,
				   struct pio *io, const char *peer,
				   const char *peer_port);
void session_free(struct poplar_session **s);
/* Greet, then read and dispatch commands until the session ends. */
void session_serve(struct poplar_session *s);
/* Dispatch one command line; returns false when the session must end. */
bool session_dispatch(struct poplar_session *s, char *line);

/* How long a TLS handshake may take. */
int session_tls_timeout_ms(const struct poplar_session *s);
void session_enter_state(struct poplar_session *s, enum session_state st);
const char *session_state_name(enum session_state st);
/* Set the reply text printf-style. */
void session_reply(struct poplar_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Command tables and handlers (state_auth.c, state_trans.c). */
extern const struct command session_commands[];
const struct command *command_find(const char *name);
bool plaintext_allowed(const struct poplar_session *s);

enum cmd_result cmd_capa(struct poplar_session *s, unsigned int argc, char **argv);
enum cmd_result cmd_stls(struct poplar_session *s, unsigned int argc, char **argv);
enum cmd_result cmd_quit(struct poplar_session *s, unsigned int argc, char **argv);
enum cmd_result cmd_noop(struct poplar_session *s, unsigned int argc, char **argv);
enum cmd_result cmd_stat(struct poplar_session *s, unsigned int argc, char **argv);
enum cmd_result cmd_list(struct poplar_session *s, unsigned int argc, char **argv);
enum cmd_result cmd_uidl(struct poplar_session *s, unsigned int argc, char **argv);
enum cmd_result cmd_retr(struct poplar_session *s, unsigned int argc, char **argv);
enum cmd_result cmd_top(struct poplar_session *s, unsigned int argc, char **argv);
enum cmd_result cmd_dele(struct poplar_session *s, unsigned int argc, char **argv);
enum cmd_result cmd_rset(struct poplar_session *s, unsigned int argc, char **argv);

/* AUTHORIZATION state: route a command to the offered modules (args is
 * the rest of the line).  Returns true (and sets *result_r) when a module
 * handles that command. */
bool auth_dispatch(struct poplar_session *s, const char *name, char *args,
		   enum cmd_result *result_r);
/* Split args at spaces into at most max words; with rest, the last word
 * is the rest of the line.  Returns the count, or -1 for too many. */
int session_split_args(char *p, char **argv, unsigned int max, bool rest);
/* Complete a login for local user `user`: lookup, privilege drop, session
 * lock, maildrop.  Writes the reply.  Returns the command result. */
enum cmd_result session_login(struct poplar_session *s, const char *user,
			      const char *method, const char *detail);
/* Restart every module's per-session state (after STLS the session
 * forgets what came before, e.g. a USER name). */
void session_reset_modules(struct poplar_session *s);
void session_log_auth_failure(struct poplar_session *s, const char *user,
			      const char *method, const char *reason);

#endif
