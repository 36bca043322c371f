/* config.c: poplar.conf parser, validator and printer.
 *
 * The whole file is read into memory (at most CONFIG_FILE_MAX bytes),
 * split into lines of at most CONFIG_LINE_MAX bytes and checked in one
 * pass; checks that need the whole file (module sections for every auth
 * name, at least one listener) run at the end.  The first error stops
 * parsing.  Every string the result holds is owned by struct config
 * through its `strings` array, so config_free() frees them in one loop.
 *
 * Syntax: "[section]" or "[section NAME]" headers, "key = value" lines,
 * blank lines, comment lines starting with '#' or ';', and comments
 * after a value when the '#' follows a space or a tab ("a = b  # note").
 * A value therefore keeps a '#' only when it is not preceded by blanks. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config.h"
#include "dotlock.h"
#include "maildrop.h"
#include "params.h"
#include "util.h"

#ifndef POPLAR_MODULE_DIR
#define POPLAR_MODULE_DIR "/usr/local/lib/poplar"
#endif

/* Listener and module names appear in logs, on the command line (-i) and
 * in file names of modules: short, and no character that needs quoting. */
#define CONFIG_NAME_MAX 32
/* RFC 1035: a host name is at most 253 characters written out. */
#define CONFIG_HOSTNAME_MAX 253
/* uid_t and gid_t are 32 bits; (uid_t)-1 means "no change" to the
 * kernel, so it is not a usable id.  Also bounded by long, the field. */
#define CONFIG_ID_MAX ((uint64_t)LONG_MAX < 4294967294u ? \
		       (uint64_t)LONG_MAX : (uint64_t)4294967294u)
/* Keys of the largest fixed section ([server]). */
#define SECTION_KEYS_MAX 16

enum section_kind {
	SEC_NONE, SEC_SERVER, SEC_LISTEN, SEC_TLS, SEC_USERDB, SEC_MAILDROP,
	SEC_MODULE, SEC_COUNT
};

struct parser {
	struct config *cfg;
	const char *file;               /* cfg->path */
	unsigned int line;              /* current line, 1-based */
	const char *key;                /* key being set, for messages */
	char *err;
	size_t errlen;
	bool failed;

	enum section_kind section;
	unsigned int section_line[SEC_COUNT];   /* first header of each */
	unsigned int key_line[SECTION_KEYS_MAX];/* in the current section */

	unsigned int driver_line;       /* [userdb] driver = */
};

/* ---- names of enumerated values --------------------------------------- */

static const char *const tls_names[] = {
	[TLS_MODE_NONE] = "none",
	[TLS_MODE_STARTTLS] = "starttls",
	[TLS_MODE_IMPLICIT] = "implicit",
};
static const char *const protocol_names[] = {
	[PROTOCOL_POP3] = "pop3",
	[PROTOCOL_KPOP] = "kpop",
};
static const char *const plaintext_names[] = {
	[PLAINTEXT_AFTER_TLS] = "after-tls",
	[PLAINTEXT_ALWAYS] = "always",
	[PLAINTEXT_NEVER] = "never",
};
static const char *const driver_names[] = {
	[USERDB_SYSTEM] = "system",
	[USERDB_PASSWD_FILE] = "passwd-file",
};
static const char *const log_names[] = {
	[LOG_TARGET_SYSLOG] = "syslog",
	[LOG_TARGET_STDERR] = "stderr",
};
static const char *const facility_names[] = {
	"mail", "daemon", "auth", "authpriv", "local0", "local1", "local2",
	"local3", "local4", "local5", "local6", "local7",
};
static const char *const yes_no_names[] = { "no", "yes" };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *
tls_mode_name(enum tls_mode m)
{
	if ((size_t)m < NELEM(tls_names))
		return tls_names[m];
	return "?";
}

const char *
plaintext_policy_name(enum plaintext_policy p)
{
	if ((size_t)p < NELEM(plaintext_names))
		return plaintext_names[p];
	return "?";
}

static const char *
name_of(const char *const *names, size_t n, unsigned int v)
{
	return v < n ? names[v] : "?";
}

/* ---- errors and storage ------------------------------------------------ */

/* Record "FILE:LINE: message" ("FILE: message" for line 0) unless an
 * error is already recorded.  Always returns -1. */
static int __attribute__((format(printf, 3, 4)))
fail(struct parser *p, unsigned int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->failed)
		return -1;
	p->failed = true;
	if (p->err == NULL || p->errlen == 0)
		return -1;
	if (line > 0)
		n = snprintf(p->err, p->errlen, "%s:%u: ", p->file, line);
	else
		n = snprintf(p->err, p->errlen, "%s: ", p->file);
	if (n < 0 || (size_t)n >= p->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Make room for element n of an array that grows by doubling: its
 * capacity is the smallest power of two >= n, so it is full exactly when
 * n is 0 or a power of two. */
static void *
grow(void *arr, size_t n, size_t size)
{
	if (n == 0 || (n & (n - 1)) == 0)
		arr = xrealloc(arr, n == 0 ? 1 : n * 2, size);
	return arr;
}

/* A copy of s owned by cfg. */
static char *
keep(struct config *cfg, const char *s)
{
	char *copy = xstrdup(s);

	cfg->strings = grow(cfg->strings, cfg->nstrings, sizeof(char *));
	cfg->strings[cfg->nstrings++] = copy;
	return copy;
}

/* ---- small syntax checks ----------------------------------------------- */

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

static char *
trim(char *s)
{
	size_t n;

	while (is_blank(*s))
		s++;
	n = strlen(s);
	while (n > 0 && is_blank(s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Listener and module names: letters, digits, '-', '_'. */
static bool
name_valid(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!is_alnum(s[n]) && s[n] != '-' && s[n] != '_')
			return false;
	return n > 0 && n <= CONFIG_NAME_MAX;
}

static bool
key_valid(const char *s)
{
	for (; *s != '\0'; s++)
		if (!is_alnum(*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

/* The host name goes into the greeting and APOP timestamps. */
static bool
hostname_valid(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!is_alnum(s[n]) && s[n] != '-' && s[n] != '.' &&
		    s[n] != '_')
			return false;
	return n > 0 && n <= CONFIG_HOSTNAME_MAX;
}

/* ---- typed values ------------------------------------------------------ */

static int
set_uint(struct parser *p, const char *v, uint64_t min, uint64_t max,
	 uint64_t *value_r)
{
	if (parse_uint(v, min, max, value_r) < 0)
		return fail(p, p->line, "invalid %s '%s': expected a number "
			    "from %llu to %llu", p->key, v,
			    (unsigned long long)min, (unsigned long long)max);
	return 0;
}

static int
set_uint32(struct parser *p, const char *v, unsigned int min,
	   unsigned int max, unsigned int *value_r)
{
	uint64_t n;

	if (set_uint(p, v, min, max, &n) < 0)
		return -1;
	*value_r = (unsigned int)n;
	return 0;
}

static int
set_enum(struct parser *p, const char *v, const char *const *names,
	 size_t n, unsigned int *value_r)
{
	char list[256];
	size_t used = 0;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(v, names[i]) == 0) {
			*value_r = (unsigned int)i;
			return 0;
		}
	}
	list[0] = '\0';
	for (size_t i = 0; i < n && used < sizeof(list); i++) {
		int w = snprintf(list + used, sizeof(list) - used, "%s%s",
				 i == 0 ? "" : i + 1 == n ? " or " : ", ",
				 names[i]);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	return fail(p, p->line, "invalid %s '%s': expected %s", p->key, v,
		    list);
}

/* Parse "1.2.3.4:110", "*:110" or "[::1]:110" into la (numeric only: a
 * configuration that resolves names would depend on DNS at start-up). */
static int
parse_address(const char *text, struct listen_address *la,
	      const char **why_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon = strrchr(text, ':');
	size_t hostlen;
	uint64_t port;

	if (colon == NULL) {
		*why_r = "expected ADDRESS:PORT";
		return -1;
	}
	if (parse_uint(colon + 1, 1, 65535, &port) < 0) {
		*why_r = "the port must be a number from 1 to 65535";
		return -1;
	}
	hostlen = (size_t)(colon - text);
	memset(&la->ss, 0, sizeof(la->ss));

	if (text[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&la->ss;

		if (hostlen < 2 || text[hostlen - 1] != ']' ||
		    hostlen - 2 >= sizeof(host)) {
			*why_r = "expected [IPV6-ADDRESS]:PORT";
			return -1;
		}
		memcpy(host, text + 1, hostlen - 2);
		host[hostlen - 2] = '\0';
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*why_r = "not a numeric IPv6 address";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		la->sslen = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&la->ss;

		if (hostlen >= sizeof(host)) {
			*why_r = "not a numeric IPv4 address";
			return -1;
		}
		memcpy(host, text, hostlen);
		host[hostlen] = '\0';
		if (memchr(host, ':', hostlen) != NULL) {
			*why_r = "write IPv6 addresses as [ADDRESS]:PORT";
			return -1;
		}
		if (strcmp(host, "*") == 0) {
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		} else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			*why_r = "not a numeric IPv4 address "
				 "(host names are not resolved)";
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		la->sslen = sizeof(*sin);
	}
	return 0;
}

static bool
same_address(const struct listen_address *a, const struct listen_address *b)
{
	if (a->ss.ss_family != b->ss.ss_family)
		return false;
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)&a->ss;
		const struct sockaddr_in *y = (const void *)&b->ss;

		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	} else {
		const struct sockaddr_in6 *x = (const void *)&a->ss;
		const struct sockaddr_in6 *y = (const void *)&b->ss;

		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr,
			      sizeof(x->sin6_addr)) == 0;
	}
}

/* ---- [server] ---------------------------------------------------------- */

enum {
	SK_HOSTNAME, SK_MODULE_DIR, SK_IDLE_TIMEOUT, SK_MAX_SESSIONS,
	SK_MAX_SESSIONS_PER_IP, SK_AUTH_FAIL_DELAY, SK_MAX_BAD_COMMANDS,
	SK_MAX_AUTH_FAILURES, SK_LOG, SK_LOG_FACILITY, SK_COUNT
};
static const char *const server_keys[] = {
	[SK_HOSTNAME] = "hostname",
	[SK_MODULE_DIR] = "module_dir",
	[SK_IDLE_TIMEOUT] = "idle_timeout",
	[SK_MAX_SESSIONS] = "max_sessions",
	[SK_MAX_SESSIONS_PER_IP] = "max_sessions_per_ip",
	[SK_AUTH_FAIL_DELAY] = "auth_fail_delay",
	[SK_MAX_BAD_COMMANDS] = "max_bad_commands",
	[SK_MAX_AUTH_FAILURES] = "max_auth_failures",
	[SK_LOG] = "log",
	[SK_LOG_FACILITY] = "log_facility",
};

static int
server_set(struct parser *p, size_t k, char *v)
{
	struct config *cfg = p->cfg;
	unsigned int e;

	switch (k) {
	case SK_HOSTNAME:
		if (!hostname_valid(v))
			return fail(p, p->line, "invalid hostname '%s'", v);
		cfg->hostname = keep(cfg, v);
		return 0;
	case SK_MODULE_DIR:
		cfg->module_dir = keep(cfg, v);
		return 0;
	case SK_IDLE_TIMEOUT:
		/* A day: longer only keeps dead sessions and their locks. */
		return set_uint32(p, v, 1, 86400, &cfg->idle_timeout);
	case SK_MAX_SESSIONS:
		return set_uint32(p, v, 1, 1000000, &cfg->max_sessions);
	case SK_MAX_SESSIONS_PER_IP:
		return set_uint32(p, v, 1, 1000000,
				  &cfg->max_sessions_per_ip);
	case SK_AUTH_FAIL_DELAY:
		return set_uint32(p, v, 0, 60, &cfg->auth_fail_delay);
	case SK_MAX_BAD_COMMANDS:
		return set_uint32(p, v, 1, 1000, &cfg->max_bad_commands);
	case SK_MAX_AUTH_FAILURES:
		return set_uint32(p, v, 1, 100, &cfg->max_auth_failures);
	case SK_LOG:
		if (set_enum(p, v, log_names, NELEM(log_names), &e) < 0)
			return -1;
		cfg->log = (enum log_target)e;
		return 0;
	case SK_LOG_FACILITY:
		if (set_enum(p, v, facility_names, NELEM(facility_names),
			     &e) < 0)
			return -1;
		cfg->log_facility = keep(cfg, facility_names[e]);
		return 0;
	}
	return fail(p, p->line, "internal error: server key %zu", k);
}

/* ---- [listen NAME] ----------------------------------------------------- */

enum { LK_ADDRESS, LK_TLS, LK_PROTOCOL, LK_AUTH, LK_PLAINTEXT_AUTH,
       LK_TRUSTED_NETWORKS };
static const char *const listen_keys[] = {
	[LK_ADDRESS] = "address",
	[LK_TLS] = "tls",
	[LK_PROTOCOL] = "protocol",
	[LK_AUTH] = "auth",
	[LK_PLAINTEXT_AUTH] = "plaintext_auth",
	[LK_TRUSTED_NETWORKS] = "trusted_networks",
};

/* "ADDR/PREFIX" or a bare address (a host). 0 or -1. */
static int
parse_network(const char *text, struct network *n)
{
	char buf[INET6_ADDRSTRLEN + 8];
	char *slash;
	uint64_t prefix;
	unsigned int max;

	if (strlen(text) >= sizeof(buf))
		return -1;
	strcpy(buf, text);
	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash++ = '\0';
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, buf, n->addr) == 1) {
		n->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, n->addr) == 1) {
		n->family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	if (slash == NULL)
		prefix = max;
	else if (parse_uint(slash, 0, max, &prefix) < 0)
		return -1;
	n->prefix = (unsigned int)prefix;
	/* No host bits beyond the prefix: "10.1.2.3/8" is a typo. */
	for (unsigned int bit = n->prefix; bit < max; bit++)
		if (n->addr[bit / 8] & (0x80u >> (bit % 8)))
			return -1;
	return 0;
}

bool
network_match(const struct network *nets, size_t count, const char *addr)
{
	unsigned char a[16];
	int family;

	if (count == 0)
		return false;
	if (inet_pton(AF_INET, addr, a) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, addr, a) == 1)
		family = AF_INET6;
	else
		return false;
	for (size_t i = 0; i < count; i++) {
		const struct network *n = &nets[i];
		unsigned int full = n->prefix / 8, rest = n->prefix % 8;

		if (n->family != family || memcmp(n->addr, a, full) != 0)
			continue;
		if (rest != 0 && ((n->addr[full] ^ a[full]) &
				  (0xffu << (8 - rest)) & 0xffu) != 0)
			continue;
		return true;
	}
	return false;
}

static int
listen_trusted_set(struct parser *p, struct listener_config *l, char *v)
{
	char *save = NULL;

	for (char *w = strtok_r(v, " \t", &save); w != NULL;
	     w = strtok_r(NULL, " \t", &save)) {
		struct network n;

		if (l->ntrusted >= CONFIG_MAX_ADDRESSES)
			return fail(p, p->line, "too many trusted networks "
				    "(at most %d)", CONFIG_MAX_ADDRESSES);
		if (parse_network(w, &n) < 0)
			return fail(p, p->line, "invalid network '%s' "
				    "(expected ADDRESS/PREFIX, numeric)", w);
		n.text = keep(p->cfg, w);
		l->trusted = grow(l->trusted, l->ntrusted, sizeof(n));
		l->trusted[l->ntrusted++] = n;
	}
	return 0;
}

static int
listen_address_add(struct parser *p, struct listener_config *l,
		   const char *v)
{
	struct config *cfg = p->cfg;
	struct listen_address la;
	const char *why;

	if (l->naddresses >= CONFIG_MAX_ADDRESSES)
		return fail(p, p->line, "too many addresses in listener '%s' "
			    "(at most %d)", l->name, CONFIG_MAX_ADDRESSES);
	if (parse_address(v, &la, &why) < 0)
		return fail(p, p->line, "invalid address '%s': %s", v, why);
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_config *o = &cfg->listeners[i];

		for (size_t j = 0; j < o->naddresses; j++)
			if (same_address(&la, &o->addresses[j]))
				return fail(p, p->line, "duplicate address "
					    "'%s' (also in listener '%s')",
					    v, o->name);
	}
	la.text = keep(cfg, v);
	l->addresses = grow(l->addresses, l->naddresses, sizeof(la));
	l->addresses[l->naddresses++] = la;
	return 0;
}

static int
listen_auth_set(struct parser *p, struct listener_config *l, char *v)
{
	char *save = NULL;

	for (char *name = strtok_r(v, " \t", &save); name != NULL;
	     name = strtok_r(NULL, " \t", &save)) {
		if (!name_valid(name))
			return fail(p, p->line, "invalid module name '%s' "
				    "(letters, digits, '-' and '_', at most "
				    "%d)", name, CONFIG_NAME_MAX);
		for (size_t i = 0; i < l->nauth; i++)
			if (strcmp(l->auth[i], name) == 0)
				return fail(p, p->line, "module '%s' is "
					    "listed twice", name);
		l->auth = grow(l->auth, l->nauth, sizeof(char *));
		l->auth[l->nauth++] = keep(p->cfg, name);
	}
	l->auth_line = p->line;
	return 0;
}

static int
listen_set(struct parser *p, size_t k, char *v)
{
	struct listener_config *l = &p->cfg->listeners[p->cfg->nlisteners - 1];
	unsigned int e;

	switch (k) {
	case LK_ADDRESS:
		return listen_address_add(p, l, v);
	case LK_TLS:
		if (set_enum(p, v, tls_names, NELEM(tls_names), &e) < 0)
			return -1;
		l->tls = (enum tls_mode)e;
		l->tls_line = p->line;
		return 0;
	case LK_PROTOCOL:
		if (set_enum(p, v, protocol_names, NELEM(protocol_names),
			     &e) < 0)
			return -1;
		l->protocol = (enum listen_protocol)e;
		l->protocol_line = p->line;
		return 0;
	case LK_AUTH:
		return listen_auth_set(p, l, v);
	case LK_PLAINTEXT_AUTH:
		if (set_enum(p, v, plaintext_names, NELEM(plaintext_names),
			     &e) < 0)
			return -1;
		l->plaintext_auth = (enum plaintext_policy)e;
		return 0;
	case LK_TRUSTED_NETWORKS:
		return listen_trusted_set(p, l, v);
	}
	return fail(p, p->line, "internal error: listen key %zu", k);
}

/* ---- [tls] ------------------------------------------------------------- */

static const char *const tls_keys[] = {
	"certificate", "key", "client_ca", "min_version", "ciphers",
	"ciphersuites",
};

static const size_t tls_fields[] = {
	offsetof(struct config, tls_certificate),
	offsetof(struct config, tls_key),
	offsetof(struct config, tls_client_ca),
	offsetof(struct config, tls_min_version),
	offsetof(struct config, tls_ciphers),
	offsetof(struct config, tls_ciphersuites),
};

static const char *
tls_value(const struct config *cfg, size_t k)
{
	return *(char *const *)((const char *)cfg + tls_fields[k]);
}

static bool
tls_any(const struct config *cfg)
{
	for (size_t k = 0; k < NELEM(tls_keys); k++)
		if (tls_value(cfg, k) != NULL)
			return true;
	return false;
}

static int
tls_set(struct parser *p, size_t k, char *v)
{
	/* TLS 1.0 and 1.1 are deprecated (RFC 8996): not offered at all. */
	if (strcmp(tls_keys[k], "min_version") == 0 &&
	    strcmp(v, "TLSv1.2") != 0 && strcmp(v, "TLSv1.3") != 0)
		return fail(p, p->line, "invalid min_version '%s': expected "
			    "TLSv1.2 or TLSv1.3", v);
	*(char **)((char *)p->cfg + tls_fields[k]) = keep(p->cfg, v);
	return 0;
}

/* ---- [userdb] ---------------------------------------------------------- */

enum { UK_DRIVER, UK_FILE, UK_DEFAULT_UID, UK_DEFAULT_GID,
       UK_SUPPLEMENTARY_GROUPS };
static const char *const userdb_keys[] = {
	[UK_DRIVER] = "driver",
	[UK_FILE] = "file",
	[UK_DEFAULT_UID] = "default_uid",
	[UK_DEFAULT_GID] = "default_gid",
	[UK_SUPPLEMENTARY_GROUPS] = "supplementary_groups",
};

static int
userdb_set(struct parser *p, size_t k, char *v)
{
	struct config *cfg = p->cfg;
	unsigned int e;
	uint64_t id;

	switch (k) {
	case UK_DRIVER:
		if (set_enum(p, v, driver_names, NELEM(driver_names), &e) < 0)
			return -1;
		cfg->userdb_driver = (enum userdb_driver)e;
		p->driver_line = p->line;
		return 0;
	case UK_FILE:
		cfg->userdb_file = keep(cfg, v);
		return 0;
	case UK_DEFAULT_UID:
	case UK_DEFAULT_GID:
		if (set_uint(p, v, 0, CONFIG_ID_MAX, &id) < 0)
			return -1;
		if (k == UK_DEFAULT_UID)
			cfg->userdb_default_uid = (long)id;
		else
			cfg->userdb_default_gid = (long)id;
		return 0;
	case UK_SUPPLEMENTARY_GROUPS:
		if (set_enum(p, v, yes_no_names, NELEM(yes_no_names), &e) < 0)
			return -1;
		cfg->userdb_groups = (int)e;
		return 0;
	}
	return fail(p, p->line, "internal error: userdb key %zu", k);
}

/* ---- [maildrop] -------------------------------------------------------- */

enum { MK_LOCATION, MK_SIZE_CACHE, MK_STATE_DIR, MK_DOTLOCK_STALE_AGE,
       MK_LOCK_TIMEOUT, MK_MAIL_GROUP };
static const char *const maildrop_keys[] = {
	[MK_LOCATION] = "location",
	[MK_SIZE_CACHE] = "size_cache",
	[MK_STATE_DIR] = "state_dir",
	[MK_DOTLOCK_STALE_AGE] = "dotlock_stale_age",
	[MK_LOCK_TIMEOUT] = "lock_timeout",
	[MK_MAIL_GROUP] = "mail_group",
};

/* A stale dotlock is one a day old at most: MDAs break theirs after
 * minutes.  Waiting for a lock longer than 10 minutes would outlast any
 * client's patience. */
#define MAILDROP_STALE_AGE_MAX 86400
#define MAILDROP_LOCK_TIMEOUT_MAX 600

static int
maildrop_set(struct parser *p, size_t k, char *v)
{
	struct config *cfg = p->cfg;
	const char *why = NULL;
	unsigned int e;

	switch (k) {
	case MK_LOCATION:
		if (maildrop_location_valid(v, &why) < 0)
			return fail(p, p->line, "invalid location '%s': %s", v,
				    why != NULL ? why : "unknown reason");
		cfg->maildrop_location = keep(cfg, v);
		return 0;
	case MK_SIZE_CACHE:
		if (set_enum(p, v, yes_no_names, NELEM(yes_no_names), &e) < 0)
			return -1;
		cfg->maildrop_cache = keep(cfg, yes_no_names[e]);
		return 0;
	case MK_STATE_DIR:
		if (maildrop_path_valid(v, &why) < 0)
			return fail(p, p->line, "invalid state_dir '%s': %s", v,
				    why != NULL ? why : "unknown reason");
		cfg->maildrop_state_dir = keep(cfg, v);
		return 0;
	case MK_DOTLOCK_STALE_AGE:
		return set_uint32(p, v, 0, MAILDROP_STALE_AGE_MAX,
				  &cfg->maildrop_stale_age);
	case MK_LOCK_TIMEOUT:
		return set_uint32(p, v, 0, MAILDROP_LOCK_TIMEOUT_MAX,
				  &cfg->maildrop_lock_timeout);
	case MK_MAIL_GROUP: {
		const struct group *gr = getgrnam(v);
		uint64_t id;

		if (gr != NULL) {
			cfg->maildrop_mail_gid = (long)gr->gr_gid;
		} else if (parse_uint(v, 0, CONFIG_ID_MAX, &id) == 0) {
			cfg->maildrop_mail_gid = (long)id;
		} else {
			return fail(p, p->line, "invalid mail_group '%s': no "
				    "such group", v);
		}
		cfg->maildrop_mail_group = keep(cfg, v);
		return 0;
	}
	}
	return fail(p, p->line, "internal error: maildrop key %zu", k);
}

/* ---- sections ---------------------------------------------------------- */

struct section_def {
	const char *name;
	bool named;                     /* [name NAME] */
	const char *const *keys;        /* NULL: free-form ([module]) */
	size_t nkeys;
	int repeatable;                 /* key allowed more than once, or -1 */
	int (*set)(struct parser *p, size_t key, char *value);
};

static const struct section_def sections[SEC_COUNT] = {
	[SEC_SERVER] = { "server", false, server_keys, NELEM(server_keys),
			 -1, server_set },
	[SEC_LISTEN] = { "listen", true, listen_keys, NELEM(listen_keys),
			 LK_ADDRESS, listen_set },
	[SEC_TLS] = { "tls", false, tls_keys, NELEM(tls_keys), -1, tls_set },
	[SEC_USERDB] = { "userdb", false, userdb_keys, NELEM(userdb_keys),
			 -1, userdb_set },
	[SEC_MAILDROP] = { "maildrop", false, maildrop_keys,
			   NELEM(maildrop_keys), -1, maildrop_set },
	[SEC_MODULE] = { "module", true, NULL, 0, -1, NULL },
};

/* parser.key_line has room for the keys of every fixed section. */
_Static_assert(SK_COUNT == NELEM(server_keys) &&
	       NELEM(server_keys) <= SECTION_KEYS_MAX &&
	       NELEM(listen_keys) <= SECTION_KEYS_MAX &&
	       NELEM(tls_keys) <= SECTION_KEYS_MAX &&
	       NELEM(userdb_keys) <= SECTION_KEYS_MAX &&
	       NELEM(maildrop_keys) <= SECTION_KEYS_MAX,
	       "SECTION_KEYS_MAX too small");
_Static_assert(NELEM(tls_fields) == NELEM(tls_keys),
	       "one struct config field per [tls] key");

/* Checks when a section ends (next header or end of file). */
static int
section_end(struct parser *p)
{
	const struct listener_config *l;

	if (p->section != SEC_LISTEN)
		return 0;
	l = &p->cfg->listeners[p->cfg->nlisteners - 1];
	if (l->naddresses == 0)
		return fail(p, l->line, "listener '%s' has no address",
			    l->name);
	if (l->nauth == 0)
		return fail(p, l->line, "listener '%s' has no auth = line",
			    l->name);
	return 0;
}

static int
listener_begin(struct parser *p, const char *name)
{
	struct config *cfg = p->cfg;
	const struct listener_config *o = config_listener(cfg, name);
	struct listener_config *l;

	if (!name_valid(name))
		return fail(p, p->line, "invalid listener name '%s' (letters, "
			    "digits, '-' and '_', at most %d)", name,
			    CONFIG_NAME_MAX);
	if (o != NULL)
		return fail(p, p->line, "duplicate listener '%s' (first "
			    "defined at %s:%u)", name, o->file, o->line);
	if (cfg->nlisteners >= CONFIG_MAX_LISTENERS)
		return fail(p, p->line, "too many listeners (at most %d)",
			    CONFIG_MAX_LISTENERS);
	cfg->listeners = grow(cfg->listeners, cfg->nlisteners, sizeof(*l));
	l = &cfg->listeners[cfg->nlisteners++];
	memset(l, 0, sizeof(*l));
	l->name = keep(cfg, name);
	l->file = cfg->path;
	l->line = p->line;
	l->tls = TLS_MODE_NONE;
	l->protocol = PROTOCOL_POP3;
	l->plaintext_auth = PLAINTEXT_AFTER_TLS;
	return 0;
}

static int
module_begin(struct parser *p, const char *name)
{
	struct config *cfg = p->cfg;
	const struct module_config *o = config_module(cfg, name);
	struct module_config *m;

	if (!name_valid(name))
		return fail(p, p->line, "invalid module name '%s' (letters, "
			    "digits, '-' and '_', at most %d)", name,
			    CONFIG_NAME_MAX);
	if (o != NULL)
		return fail(p, p->line, "duplicate module '%s' (first "
			    "defined at %s:%u)", name, o->file, o->line);
	cfg->modules = grow(cfg->modules, cfg->nmodules, sizeof(*m));
	m = &cfg->modules[cfg->nmodules++];
	memset(m, 0, sizeof(*m));
	m->name = keep(cfg, name);
	m->file = cfg->path;
	m->line = p->line;
	return 0;
}

/* s is the trimmed line, starting with '['. */
static int
section_begin(struct parser *p, char *s)
{
	size_t n = strlen(s);
	enum section_kind kind = SEC_NONE;
	char *type, *name;

	if (section_end(p) < 0)
		return -1;
	if (n < 2 || s[n - 1] != ']')
		return fail(p, p->line, "malformed section header "
			    "(expected [section] or [section NAME])");
	s[n - 1] = '\0';
	type = trim(s + 1);
	name = type + strcspn(type, " \t");
	if (*name != '\0')
		*name++ = '\0';
	name = trim(name);
	if (*type == '\0')
		return fail(p, p->line, "empty section name");

	for (size_t i = 0; i < SEC_COUNT; i++)
		if (sections[i].name != NULL &&
		    strcmp(sections[i].name, type) == 0)
			kind = (enum section_kind)i;
	if (kind == SEC_NONE)
		return fail(p, p->line, "unknown section [%s]", type);

	if (sections[kind].named && *name == '\0')
		return fail(p, p->line, "section [%s] needs a name: "
			    "[%s NAME]", type, type);
	if (!sections[kind].named && *name != '\0')
		return fail(p, p->line, "section [%s] takes no name", type);

	if (kind == SEC_LISTEN) {
		if (listener_begin(p, name) < 0)
			return -1;
	} else if (kind == SEC_MODULE) {
		if (module_begin(p, name) < 0)
			return -1;
	} else if (p->section_line[kind] != 0) {
		return fail(p, p->line, "duplicate section [%s] (first at "
			    "line %u)", type, p->section_line[kind]);
	}
	if (p->section_line[kind] == 0)
		p->section_line[kind] = p->line;
	p->section = kind;
	memset(p->key_line, 0, sizeof(p->key_line));
	return 0;
}

static int
module_item_add(struct parser *p, const char *key, const char *value)
{
	struct config *cfg = p->cfg;
	struct module_config *m = &cfg->modules[cfg->nmodules - 1];
	struct poplar_config_item *it;

	m->items = grow(m->items, m->nitems, sizeof(*it));
	it = &m->items[m->nitems++];
	it->key = keep(cfg, key);
	it->value = keep(cfg, value);
	it->file = cfg->path;
	it->line = p->line;
	return 0;
}

static int
key_set(struct parser *p, const char *key, char *value)
{
	const struct section_def *def = &sections[p->section];
	size_t k;

	p->key = key;
	if (def->keys == NULL)
		return module_item_add(p, key, value);

	for (k = 0; k < def->nkeys; k++)
		if (strcmp(def->keys[k], key) == 0)
			break;
	if (k == def->nkeys) {
		if (p->section == SEC_LISTEN)
			return fail(p, p->line, "unknown key '%s' in "
				    "[listen %s]", key,
				    p->cfg->listeners[p->cfg->nlisteners - 1]
				    .name);
		return fail(p, p->line, "unknown key '%s' in [%s]", key,
			    def->name);
	}
	if (p->key_line[k] != 0 && (int)k != def->repeatable)
		return fail(p, p->line, "duplicate key '%s' (first at line "
			    "%u)", key, p->key_line[k]);
	if (p->key_line[k] == 0)
		p->key_line[k] = p->line;
	if (*value == '\0')
		return fail(p, p->line, "missing value for '%s'", key);
	return def->set(p, k, value);
}

/* ---- lines ------------------------------------------------------------- */

/* Cut a comment: '#' at the start of the line or after a blank. */
static void
strip_comment(char *s)
{
	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] == '#' && (i == 0 || is_blank(s[i - 1]))) {
			s[i] = '\0';
			return;
		}
	}
}

static int
parse_line(struct parser *p, char *buf)
{
	char *s, *eq, *key, *value;

	for (s = buf; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(p, p->line, "control character 0x%02x "
				    "in line", c);
	}
	strip_comment(buf);
	s = trim(buf);
	if (*s == '\0' || *s == ';')
		return 0;
	if (*s == '[')
		return section_begin(p, s);

	eq = strchr(s, '=');
	if (eq == NULL)
		return fail(p, p->line, "expected 'key = value', [section] "
			    "or a comment");
	*eq = '\0';
	key = trim(s);
	value = trim(eq + 1);
	if (*key == '\0')
		return fail(p, p->line, "missing key before '='");
	if (!key_valid(key))
		return fail(p, p->line, "invalid key '%s' (letters, digits, "
			    "'-', '_' and '.')", key);
	if (p->section == SEC_NONE)
		return fail(p, p->line, "key '%s' outside of any section",
			    key);
	return key_set(p, key, value);
}

static int
parse_text(struct parser *p, const char *text, size_t len)
{
	char buf[CONFIG_LINE_MAX];
	size_t pos = 0;

	while (pos < len) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - start) : len - pos;

		pos += n + (nl != NULL ? 1 : 0);
		p->line++;
		if (n > 0 && start[n - 1] == '\r')
			n--;
		if (n >= sizeof(buf))
			return fail(p, p->line, "line too long (at most %d "
				    "bytes)", CONFIG_LINE_MAX - 1);
		if (memchr(start, '\0', n) != NULL)
			return fail(p, p->line, "NUL byte in line");
		memcpy(buf, start, n);
		buf[n] = '\0';
		if (parse_line(p, buf) < 0)
			return -1;
	}
	return 0;
}

/* Checks that need the whole file, then defaults for unset strings. */
static int
finish(struct parser *p)
{
	struct config *cfg = p->cfg;

	if (section_end(p) < 0)
		return -1;
	if (cfg->nlisteners == 0)
		return fail(p, 0, "no [listen NAME] section");
	if (cfg->userdb_driver == USERDB_PASSWD_FILE &&
	    cfg->userdb_file == NULL)
		return fail(p, p->driver_line, "driver = passwd-file needs "
			    "file = PATH");
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_config *l = &cfg->listeners[i];

		if (l->tls != TLS_MODE_NONE &&
		    (cfg->tls_certificate == NULL || cfg->tls_key == NULL))
			return fail(p, l->tls_line, "listener '%s' has tls = %s "
				    "but [tls] has no certificate and key",
				    l->name, tls_mode_name(l->tls));
		/* KPOP authenticates before the greeting, in the clear by
		 * its own design (fetchmail speaks it on plain TCP). */
		if (l->protocol == PROTOCOL_KPOP && l->tls != TLS_MODE_NONE)
			return fail(p, l->tls_line, "listener '%s' has "
				    "protocol = kpop, which has no TLS: set "
				    "tls = none", l->name);
		for (size_t j = 0; j < l->nauth; j++)
			if (config_module(cfg, l->auth[j]) == NULL)
				return fail(p, l->auth_line, "listener "
					    "'%s' offers '%s' but there is no "
					    "[module %s] section", l->name,
					    l->auth[j], l->auth[j]);
	}

	if (cfg->hostname == NULL) {
		char host[CONFIG_HOSTNAME_MAX + 2];

		if (gethostname(host, sizeof(host)) != 0)
			host[0] = '\0';
		host[sizeof(host) - 1] = '\0';
		cfg->hostname = keep(cfg, hostname_valid(host) ? host :
				     "localhost");
	}
	if (cfg->module_dir == NULL)
		cfg->module_dir = keep(cfg, POPLAR_MODULE_DIR);
	if (cfg->log_facility == NULL)
		cfg->log_facility = keep(cfg, "mail");
	if (cfg->maildrop_location == NULL)
		cfg->maildrop_location = keep(cfg, "maildir:%h/Maildir");
	if (cfg->maildrop_cache == NULL)
		cfg->maildrop_cache = keep(cfg, "yes");
	/* System users are members of groups in the group database; the
	 * users of a passwd-file are not, unless the admin says so. */
	if (cfg->userdb_groups < 0)
		cfg->userdb_groups = cfg->userdb_driver == USERDB_SYSTEM;
	return 0;
}

/* ---- public ------------------------------------------------------------ */

struct config *
config_parse(const char *name, const char *text, size_t len, char *err,
	     size_t errlen)
{
	struct parser p;
	struct config *cfg = xcalloc(1, sizeof(*cfg));

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	cfg->path = keep(cfg, name);
	cfg->idle_timeout = DEFAULT_IDLE_TIMEOUT;
	cfg->max_sessions = DEFAULT_MAX_SESSIONS;
	cfg->max_sessions_per_ip = DEFAULT_MAX_SESSIONS_PER_IP;
	cfg->auth_fail_delay = DEFAULT_AUTH_FAIL_DELAY;
	cfg->max_bad_commands = MAX_BAD_COMMANDS;
	cfg->max_auth_failures = MAX_AUTH_FAILURES;
	cfg->log = LOG_TARGET_SYSLOG;
	cfg->userdb_driver = USERDB_SYSTEM;
	cfg->userdb_default_uid = -1;
	cfg->userdb_default_gid = -1;
	cfg->userdb_groups = -1;
	cfg->maildrop_stale_age = DOTLOCK_DEFAULT_STALE_AGE;
	cfg->maildrop_lock_timeout = DOTLOCK_DEFAULT_TIMEOUT;
	cfg->maildrop_mail_gid = -1;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.file = cfg->path;
	p.err = err;
	p.errlen = errlen;

	if (len > CONFIG_FILE_MAX)
		fail(&p, 0, "larger than %d bytes", CONFIG_FILE_MAX);
	else if (parse_text(&p, text, len) == 0)
		finish(&p);
	if (p.failed) {
		config_free(&cfg);
		return NULL;
	}
	return cfg;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct config *cfg = NULL;
	char *buf = NULL;
	size_t len = 0;
	int fd;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		goto fail_errno;
	/* One byte more than allowed, so that config_parse sees a file that
	 * is too large without reading all of it (-c /dev/zero). */
	buf = xcalloc(CONFIG_FILE_MAX + 1, 1);
	while (len < CONFIG_FILE_MAX + 1) {
		ssize_t n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail_errno;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	cfg = config_parse(path, buf, len, err, errlen);
	free(buf);
	return cfg;

fail_errno:
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: cannot read: %s", path,
			 strerror(errno));
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static void
print_value(FILE *out, const char *key, const char *value)
{
	if (value != NULL)
		fprintf(out, "%s = %s\n", key, value);
}

void
config_print(const struct config *cfg, FILE *out)
{
	fprintf(out, "[server]\n");
	print_value(out, "hostname", cfg->hostname);
	print_value(out, "module_dir", cfg->module_dir);
	fprintf(out, "idle_timeout = %u\n", cfg->idle_timeout);
	fprintf(out, "max_sessions = %u\n", cfg->max_sessions);
	fprintf(out, "max_sessions_per_ip = %u\n", cfg->max_sessions_per_ip);
	fprintf(out, "auth_fail_delay = %u\n", cfg->auth_fail_delay);
	fprintf(out, "max_bad_commands = %u\n", cfg->max_bad_commands);
	fprintf(out, "max_auth_failures = %u\n", cfg->max_auth_failures);
	print_value(out, "log", name_of(log_names, NELEM(log_names),
					cfg->log));
	print_value(out, "log_facility", cfg->log_facility);

	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_config *l = &cfg->listeners[i];

		fprintf(out, "\n[listen %s]\n", l->name);
		for (size_t j = 0; j < l->naddresses; j++)
			print_value(out, "address", l->addresses[j].text);
		print_value(out, "tls", tls_mode_name(l->tls));
		print_value(out, "protocol",
			    name_of(protocol_names, NELEM(protocol_names),
				    l->protocol));
		fprintf(out, "auth =");
		for (size_t j = 0; j < l->nauth; j++)
			fprintf(out, " %s", l->auth[j]);
		fprintf(out, "\n");
		print_value(out, "plaintext_auth",
			    plaintext_policy_name(l->plaintext_auth));
		if (l->ntrusted > 0) {
			fprintf(out, "trusted_networks =");
			for (size_t j = 0; j < l->ntrusted; j++)
				fprintf(out, " %s", l->trusted[j].text);
			fprintf(out, "\n");
		}
	}

	if (tls_any(cfg)) {
		fprintf(out, "\n[tls]\n");
		for (size_t k = 0; k < NELEM(tls_keys); k++)
			print_value(out, tls_keys[k], tls_value(cfg, k));
	}

	fprintf(out, "\n[userdb]\n");
	print_value(out, "driver", name_of(driver_names, NELEM(driver_names),
					   cfg->userdb_driver));
	print_value(out, "file", cfg->userdb_file);
	if (cfg->userdb_default_uid >= 0)
		fprintf(out, "default_uid = %ld\n", cfg->userdb_default_uid);
	if (cfg->userdb_default_gid >= 0)
		fprintf(out, "default_gid = %ld\n", cfg->userdb_default_gid);
	print_value(out, "supplementary_groups",
		    cfg->userdb_groups ? "yes" : "no");

	fprintf(out, "\n[maildrop]\n");
	print_value(out, "location", cfg->maildrop_location);
	print_value(out, "size_cache", cfg->maildrop_cache);
	if (cfg->maildrop_state_dir != NULL)
		print_value(out, "state_dir", cfg->maildrop_state_dir);
	fprintf(out, "dotlock_stale_age = %u\n", cfg->maildrop_stale_age);
	fprintf(out, "lock_timeout = %u\n", cfg->maildrop_lock_timeout);
	if (cfg->maildrop_mail_group != NULL)
		print_value(out, "mail_group", cfg->maildrop_mail_group);

	for (size_t i = 0; i < cfg->nmodules; i++) {
		const struct module_config *m = &cfg->modules[i];

		fprintf(out, "\n[module %s]\n", m->name);
		for (size_t j = 0; j < m->nitems; j++)
			fprintf(out, "%s = %s\n", m->items[j].key,
				m->items[j].value);
	}
}

const struct listener_config *
config_listener(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (strcmp(cfg->listeners[i].name, name) == 0)
			return &cfg->listeners[i];
	return NULL;
}

const struct module_config *
config_module(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nmodules; i++)
		if (strcmp(cfg->modules[i].name, name) == 0)
			return &cfg->modules[i];
	return NULL;
}

void
config_free(struct config **cfgp)
{
	struct config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	*cfgp = NULL;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		free(cfg->listeners[i].addresses);
		free(cfg->listeners[i].auth);
		free(cfg->listeners[i].trusted);
	}
	free(cfg->listeners);
	for (size_t i = 0; i < cfg->nmodules; i++)
		free(cfg->modules[i].items);
	free(cfg->modules);
	for (size_t i = 0; i < cfg->nstrings; i++)
		free(cfg->strings[i]);
	free(cfg->strings);
	free(cfg);
}
