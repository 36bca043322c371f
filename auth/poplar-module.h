/* poplar-module.h: the ABI between poplard and its authentication modules.
 *
 * This header is installed: third parties build modules against it.
 *
 * A module is a shared object in module_dir that exports exactly one
 * symbol, POPLAR_MODULE_SYMBOL, a const struct poplar_module.  poplard
 * checks abi_major (must be equal) and abi_minor (must be <= the host's)
 * before it calls anything.  New fields are only ever appended, and a new
 * field bumps abi_minor; the host reads a field only when the module's
 * abi_minor says it is there.
 *
 * A module never reads the socket, never decides the session's state and
 * never touches a maildrop.  Its command handlers return an outcome; for a
 * successful login they name the local user, and the core does the rest
 * (user lookup, privilege drop, session lock, maildrop).
 *
 * Each POP3 session is its own process: a module may keep per-session state
 * in the pointer that session_start gives it.
 */
#ifndef POPLAR_MODULE_H
#define POPLAR_MODULE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POPLAR_MODULE_ABI_MAJOR 1
#define POPLAR_MODULE_ABI_MINOR 1
#define POPLAR_MODULE_SYMBOL "poplar_module"

/* Longest local user name a module may return (bytes, without NUL). */
#define POPLAR_USER_MAX 64
/* Longest detail string for the log. */
#define POPLAR_DETAIL_MAX 256

struct poplar_session;      /* opaque: one POP3 session */

/* One "key = value" line of the module's [module NAME] section. */
struct poplar_config_item {
	const char *key;
	const char *value;
	const char *file;       /* configuration file, for file:line errors */
	unsigned int line;
};

enum poplar_log_level {
	POPLAR_LOG_ERROR,
	POPLAR_LOG_WARNING,
	POPLAR_LOG_INFO,
	POPLAR_LOG_DEBUG
};

/* Results of the host's verify_password service. */
enum poplar_verify {
	POPLAR_VERIFY_OK = 1,
	POPLAR_VERIFY_FAIL = 0,     /* unknown user or wrong password */
	POPLAR_VERIFY_TEMP = -1     /* backend unavailable: try later */
};

/* What a command handler tells the core to do.  The core writes the reply:
 * "+OK msg", "-ERR msg", "-ERR [AUTH] msg" or "-ERR [SYS/TEMP] msg". */
enum poplar_outcome {
	POPLAR_OK,          /* +OK out->message; stay in AUTHORIZATION */
	POPLAR_ERR,         /* -ERR out->message; not a failed login */
	POPLAR_QUIET,       /* the handler already replied (continuations) */
	POPLAR_LOGIN,       /* authenticated as out->user; core logs in */
	POPLAR_LOGIN_FAIL,  /* failed login: same answer and delay for all */
	POPLAR_TEMPFAIL,    /* -ERR [SYS/TEMP]: backend outage, logged */
	POPLAR_DISCONNECT   /* close the session now (protocol violation) */
};

/* Filled by handlers and hooks.  Strings are copied by the core. */
struct poplar_outcome_info {
	const char *message;                /* reply text, optional */
	char user[POPLAR_USER_MAX + 1];     /* POPLAR_LOGIN: local user; on
					       failure: the user as given */
	const char *method;                 /* method for the log ("pass") */
	char detail[POPLAR_DETAIL_MAX];     /* extra key=value text for the log */
	const char *reason;                 /* failure reason for the log */
};

/* Services the host lends to modules.  Append-only; `size` is
 * sizeof(struct poplar_host) of the running host. */
struct poplar_host {
	unsigned int abi_major;
	unsigned int abi_minor;
	size_t size;

	/* printf-style logging; the host adds the module name. */
	void (*log)(enum poplar_log_level level, const char *fmt, ...)
		__attribute__((format(printf, 2, 3)));

	/* [server] hostname. */
	const char *(*hostname)(void);

	/* Send one reply line; the host appends CRLF.  0 or -1. */
	int (*send_line)(struct poplar_session *s, const char *line);
	/* Read one client line (CRLF stripped, NUL-terminated) of at most
	 * size-1 bytes, with the idle timeout.  Returns its length, or -1 on
	 * EOF, timeout, error or a line longer than size-1 (which is then
	 * discarded up to its end). */
	long (*read_line)(struct poplar_session *s, char *buf, size_t size);
	/* Exact-length binary I/O for pre-greeting exchanges (KPOP):
	 * read_exact returns 0 after len bytes, -1 on EOF/error/timeout
	 * (timeout_ms bounds the whole read). */
	int (*read_exact)(struct poplar_session *s, void *buf, size_t len,
			  int timeout_ms);
	int (*write_all)(struct poplar_session *s, const void *buf, size_t len);

	/* Session facts. */
	const char *(*peer_address)(struct poplar_session *s);
	const char *(*listener_name)(struct poplar_session *s);
	int (*tls_active)(struct poplar_session *s);
	/* 1 when the policy lets plaintext credentials (USER/PASS, PLAIN)
	 * be used on this session now. */
	int (*plaintext_allowed)(struct poplar_session *s);

	/* Check a password against [userdb].  Runs a full hash even for an
	 * unknown user.  reason_r (static string) says why it failed. */
	enum poplar_verify (*verify_password)(const char *user,
					      const char *password,
					      const char **reason_r);

	/* Constant-time compare: 0 when equal. */
	int (*secure_compare)(const void *a, const void *b, size_t len);
	/* Wipe memory so that the compiler cannot drop it. */
	void (*wipe)(void *p, size_t len);

	/* The token the greeting carried (APOP's timestamp), or "" when it
	 * had none.  It stays the session's token after STLS. */
	const char *(*greeting_token)(struct poplar_session *s);

	/* Strength of the session's TLS in bits (the cipher's secret key
	 * bits: SASL's external SSF), 0 without TLS. */
	int (*tls_ssf)(struct poplar_session *s);
	/* The client certificate's identity when the TLS handshake verified
	 * one against [tls] client_ca: its subject commonName.  NULL
	 * otherwise.  The host owns the string; it stays valid for the
	 * session. */
	const char *(*tls_peer_identity)(struct poplar_session *s);
};

/* True when the running host's struct poplar_host has member m: a module
 * checks this before using a member appended after the first release. */
#define POPLAR_HOST_HAS(host, m) \
	((host)->size >= offsetof(struct poplar_host, m) + sizeof((host)->m))

/* One login method a module offers, as --policy reports it. */
struct poplar_method_policy {
	const char *name;           /* "USER/PASS", "APOP", "SASL PLAIN" */
	unsigned int flags;         /* POPLAR_POLICY_* */
};
/* A reusable secret is readable on the wire without TLS: offered only
 * where plaintext_auth allows it. */
#define POPLAR_POLICY_PLAINTEXT   0x1u
/* A captured exchange cannot be replayed to log in again. */
#define POPLAR_POLICY_REPLAY_SAFE 0x2u
/* The server proves its identity to the client too. */
#define POPLAR_POLICY_MUTUAL      0x4u
/* Without TLS, a captured exchange allows an offline guessing attack
 * on the secret (APOP's MD5, CRAM-MD5). */
#define POPLAR_POLICY_GUESSABLE   0x8u

/* An AUTHORIZATION-state command a module handles. */
struct poplar_command {
	const char *name;           /* upper case, e.g. "USER" */
	unsigned int min_args;
	unsigned int max_args;
	unsigned int flags;         /* POPLAR_CMD_* */
	enum poplar_outcome (*handler)(struct poplar_session *s, void *sess,
				       unsigned int argc, char **argv,
				       struct poplar_outcome_info *out);
};

/* The command carries a reusable secret in clear: the core refuses it
 * (and hides it from CAPA) where plaintext_auth forbids that. */
#define POPLAR_CMD_PLAINTEXT 0x1u
/* The last argument is the rest of the line, spaces included (PASS). */
#define POPLAR_CMD_REST      0x2u

struct poplar_module {
	unsigned int abi_major;     /* POPLAR_MODULE_ABI_MAJOR */
	unsigned int abi_minor;     /* POPLAR_MODULE_ABI_MINOR */
	const char *name;           /* must equal the file's base name */
	const char *version;
	const char *description;    /* one line for --list-modules */

	/* Called once in the master after loading.  items are the keys of
	 * [module NAME]; reject unknown keys.  On failure return -1 and set
	 * *error_r to a static or module-owned string; *item_r may point to
	 * the offending item for file:line.  mod_r receives module state. */
	int (*init)(const struct poplar_host *host,
		    const struct poplar_config_item *items, size_t nitems,
		    void **mod_r, const struct poplar_config_item **item_r,
		    const char **error_r);
	void (*fini)(void *mod);

	/* Per session: state for this session.  Optional. */
	int (*session_start)(void *mod, struct poplar_session *s, void **sess_r);
	void (*session_end)(void *mod, void *sess);

	/* Pre-greeting hook (KPOP).  Returns POPLAR_LOGIN (identity known,
	 * greet; the login completes later through this module's commands),
	 * POPLAR_OK (nothing happened, greet), or POPLAR_DISCONNECT. Optional. */
	enum poplar_outcome (*connect)(void *mod, void *sess,
				       struct poplar_session *s,
				       struct poplar_outcome_info *out);

	/* Contribute a token to the greeting (APOP's <timestamp>): write at
	 * most size-1 bytes, return the length or 0.  Optional. */
	size_t (*greeting)(void *mod, void *sess, struct poplar_session *s,
			   char *buf, size_t size);

	/* Add CAPA lines for the AUTHORIZATION state through emit().
	 * Optional. */
	void (*capa)(void *mod, void *sess, struct poplar_session *s,
		     void (*emit)(struct poplar_session *s, const char *line));

	/* AUTHORIZATION-state commands, terminated by a NULL name. */
	const struct poplar_command *commands;

	/* Describe the login methods offered, for `poplard --policy` and the
	 * warnings of -t: fill at most max entries, return the count.
	 * Called after init.  Optional. */
	size_t (*policy)(void *mod, struct poplar_method_policy *out,
			 size_t max);

	/* Called before the core completes a login of `user` by `method`
	 * (another module's name, or this one's): return nonzero to refuse
	 * it (e.g. APOP users may not use USER/PASS); *reason_r goes to the
	 * log and the client gets the usual failure.  Optional. */
	int (*login_veto)(void *mod, const char *user, const char *method,
			  const char **reason_r);

	/* Since ABI 1.1.  Self-check for `poplard -t` (verbose = 0: print
	 * only problems, with advice) and `poplard --check-kerberos`
	 * (verbose = 1: also what was found: keytab, principals, realm...).
	 * Called in the master after init, with the privileges poplard was
	 * started with.  Writes lines to out; returns 0 when logins can
	 * work, -1 when a problem will make them fail.  Optional. */
	int (*check)(void *mod, FILE *out, int verbose);

	/* Reserved for later minor versions: must be NULL. */
	void *reserved[5];
};

#ifdef __cplusplus
}
#endif
#endif /* POPLAR_MODULE_H */
