/* config.h: poplar.conf, an INI file, parsed and validated in full.
 *
 * Every error is reported as "file:line: message".  Unknown sections and
 * keys are errors.  [module NAME] sections are kept as raw key/value items
 * and validated by the module's init (which also reports file:line). */
#ifndef POPLAR_CONFIG_H
#define POPLAR_CONFIG_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include "log.h"
#include "../auth/poplar-module.h"

enum tls_mode { TLS_MODE_NONE, TLS_MODE_STARTTLS, TLS_MODE_IMPLICIT };
enum listen_protocol { PROTOCOL_POP3, PROTOCOL_KPOP };
enum plaintext_policy { PLAINTEXT_AFTER_TLS, PLAINTEXT_ALWAYS, PLAINTEXT_NEVER };
enum userdb_driver { USERDB_SYSTEM, USERDB_PASSWD_FILE };

struct listen_address {
	char *text;                     /* as written: "127.0.0.1:110" */
	struct sockaddr_storage ss;     /* parsed, numeric only (no DNS) */
	socklen_t sslen;
};

/* A network in CIDR form ("127.0.0.0/8", "::1/128"). */
struct network {
	int family;                     /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned int prefix;
	char *text;
};

struct listener_config {
	char *name;
	const char *file;
	unsigned int line;              /* of the [listen NAME] header */
	struct listen_address *addresses;
	size_t naddresses;
	enum tls_mode tls;
	enum listen_protocol protocol;
	char **auth;                    /* module names offered here */
	size_t nauth;
	enum plaintext_policy plaintext_auth;
	/* Peers on these networks count as secure for plaintext_auth =
	 * after-tls (e.g. loopback for a local webmail). */
	struct network *trusted;
	size_t ntrusted;
	unsigned int tls_line;          /* of "tls =", for errors */
	unsigned int protocol_line;     /* of "protocol =" */
	unsigned int auth_line;         /* of "auth =" */
};

/* Is the peer address (text, as logged) inside one of the networks? */
bool network_match(const struct network *nets, size_t n, const char *addr);

struct module_config {
	char *name;                     /* NAME of [module NAME] */
	const char *file;
	unsigned int line;
	struct poplar_config_item *items;
	size_t nitems;
};

struct config {
	char *path;

	/* [server] */
	char *hostname;                 /* default: gethostname() */
	char *module_dir;               /* default: POPLAR_MODULE_DIR */
	unsigned int idle_timeout;      /* seconds, default 600 */
	unsigned int max_sessions;
	unsigned int max_sessions_per_ip;
	unsigned int auth_fail_delay;   /* seconds, 0 allowed */
	unsigned int max_bad_commands;
	unsigned int max_auth_failures;
	enum log_target log;            /* default syslog */
	char *log_facility;             /* syslog facility name, default mail */

	/* [listen NAME], in file order */
	struct listener_config *listeners;
	size_t nlisteners;

	/* [tls]: stored as written; NULL when unset */
	char *tls_certificate;
	char *tls_key;
	char *tls_client_ca;
	char *tls_min_version;
	char *tls_ciphers;
	char *tls_ciphersuites;

	/* [userdb] */
	enum userdb_driver userdb_driver;   /* default system */
	char *userdb_file;                  /* passwd-file path */
	long userdb_default_uid;            /* -1: none */
	long userdb_default_gid;
	int userdb_groups;                  /* supplementary groups: 1 look
					     * them up (initgroups), 0 only the
					     * user's gid; default by driver */

	/* [maildrop] */
	char *maildrop_location;        /* default maildir:%h/Maildir */
	char *maildrop_cache;           /* size cache: "yes"/"no" for now */
	char *maildrop_state_dir;       /* mbox state files; NULL: beside */
	unsigned int maildrop_stale_age;        /* s, dotlock breaking */
	unsigned int maildrop_lock_timeout;     /* s, delivery lock wait */
	char *maildrop_mail_group;      /* kept as a supplementary group */
	long maildrop_mail_gid;         /* -1: none */

	/* [module NAME], in file order */
	struct module_config *modules;
	size_t nmodules;

	/* storage for strings of the items above */
	char **strings;
	size_t nstrings;
};

/* Load and validate path.  On failure returns NULL and writes
 * "file:line: message" (or "file: message") into err. */
struct config *config_load(const char *path, char *err, size_t errlen);

/* Parse from memory (unit tests); name is used in messages. */
struct config *config_parse(const char *name, const char *text, size_t len,
			    char *err, size_t errlen);

/* Print the effective settings, one "key = value" per line, in INI form. */
void config_print(const struct config *cfg, FILE *out);

const struct listener_config *config_listener(const struct config *cfg,
					      const char *name);
const struct module_config *config_module(const struct config *cfg,
					  const char *name);

void config_free(struct config **cfg);

const char *tls_mode_name(enum tls_mode m);
const char *plaintext_policy_name(enum plaintext_policy p);

#endif
