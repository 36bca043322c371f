/* sasl.c: the sasl module: POP3 AUTH (RFC 5034) through Cyrus SASL.
 *
 * Cyrus is initialised once in the master (sasl_server_init: plugins,
 * /etc/sasl2/SERVICE.conf); each AUTH gets its own sasl_conn_t, made
 * with the session's TLS facts (external SSF, the verified client
 * certificate for EXTERNAL) and thrown away when the exchange ends.
 *
 * The offered mechanisms are computed in one place, offered_mechs(), for
 * CAPA's SASL line, a bare AUTH and the check of AUTH MECH.  No security
 * layer is ever negotiated (max_ssf 0): after AUTH the session speaks
 * plain POP3, inside TLS when TLS is active.
 *
 * Runs as root before login when poplard does: it only parses bounded,
 * base64-checked lines and hands them to Cyrus. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sasl/sasl.h>
#include "poplar-module.h"
#include "sasl_core.h"
#ifdef SASL_PRINCIPAL_POLICY
#include <krb5.h>
#include "principal.h"
#endif

/* A Cyrus option from [module sasl], passed through the getopt callback. */
struct sasl_opt {
	char *key;
	char *value;
};

struct sasl_mod {
	const struct poplar_host *host;
	char *service;          /* SASL service name, and the .conf name */
	char *realm;            /* user realm for sasl_server_new, or NULL */
	struct sasl_opt *opts;
	size_t nopts;
	sasl_callback_t callbacks[3];
	bool cyrus_up;          /* sasl_server_init succeeded */
	/* Names for --policy: "SASL MECH". */
	char *policy_names[32];
	unsigned int policy_flags[32];
	size_t npolicy;
	/* GSSAPI identities map through the principal policy; without one
	 * (no Kerberos configuration) the Kerberos mechanisms are not
	 * offered. */
	bool kerberos_ok;
#ifdef SASL_PRINCIPAL_POLICY
	krb5_context kctx;
	struct principal_policy *princ;
#endif
};

static struct sasl_mod *the_mod;

/* What Cyrus logged during the current exchange: an error-level message
 * means a backend (sasldb, saslauthd, keytab) failed, not the client. */
static struct {
	bool active;
	bool backend_error;
	char message[256];
} exchange_log;

/* ---- Cyrus callbacks ------------------------------------------------------ */

static int
cb_getopt(void *context, const char *plugin_name, const char *option,
	  const char **result, unsigned *len)
{
	struct sasl_mod *m = context;

	(void)plugin_name;
	if (m == NULL || option == NULL)
		return SASL_FAIL;
	for (size_t i = 0; i < m->nopts; i++)
		if (strcmp(m->opts[i].key, option) == 0) {
			*result = m->opts[i].value;
			if (len != NULL)
				*len = (unsigned)strlen(m->opts[i].value);
			return SASL_OK;
		}
	/* Not ours: Cyrus falls back to SERVICE.conf. */
	return SASL_FAIL;
}

static int
cb_log(void *context, int level, const char *message)
{
	struct sasl_mod *m = context;
	enum poplar_log_level prio;

	if (m == NULL || message == NULL)
		return SASL_OK;
	switch (level) {
	case SASL_LOG_ERR:
		prio = POPLAR_LOG_ERROR;
		if (exchange_log.active && !exchange_log.backend_error) {
			exchange_log.backend_error = true;
			snprintf(exchange_log.message,
				 sizeof(exchange_log.message), "%s", message);
		}
		break;
	case SASL_LOG_WARN:
		prio = POPLAR_LOG_WARNING;
		break;
	case SASL_LOG_FAIL:
		/* The first failure message names the cause (e.g. "cannot
		 * connect to saslauthd server"). */
		if (exchange_log.active && exchange_log.message[0] == '\0')
			snprintf(exchange_log.message,
				 sizeof(exchange_log.message), "%s", message);
		prio = POPLAR_LOG_INFO;
		break;
	case SASL_LOG_NOTE:
		prio = POPLAR_LOG_INFO;
		break;
	case SASL_LOG_DEBUG:
	case SASL_LOG_TRACE:
		prio = POPLAR_LOG_DEBUG;
		break;
	default:
		/* SASL_LOG_PASS may show passwords: never logged. */
		return SASL_OK;
	}
	m->host->log(prio, "sasl: %s", message);
	return SASL_OK;
}

/* ---- mechanisms ------------------------------------------------------------- */

static bool
mech_is_kerberos(const char *mech)
{
	return strcmp(mech, "GSSAPI") == 0 || strcmp(mech, "GS2-KRB5") == 0 ||
	       strcmp(mech, "GS2-IAKERB") == 0;
}

/* A connection for one AUTH (or one listing), carrying the session's
 * TLS facts and our security properties.  NULL with *error_r. */
static sasl_conn_t *
conn_new(struct sasl_mod *m, struct poplar_session *s, const char **error_r)
{
	const struct poplar_host *h = m->host;
	sasl_security_properties_t props;
	sasl_conn_t *conn = NULL;
	sasl_ssf_t ssf = 0;
	const char *id = NULL;
	int r;

	r = sasl_server_new(m->service, h->hostname(), m->realm, NULL, NULL,
			    NULL, 0, &conn);
	if (r != SASL_OK) {
		*error_r = sasl_errstring(r, NULL, NULL);
		return NULL;
	}
	memset(&props, 0, sizeof(props));
	props.min_ssf = 0;
	/* No SASL security layers: TLS is the session's protection. */
	props.max_ssf = 0;
	props.maxbufsize = 0;
	props.security_flags = SASL_SEC_NOANONYMOUS;
	if (!h->plaintext_allowed(s))
		props.security_flags |= SASL_SEC_NOPLAINTEXT;
	if (POPLAR_HOST_HAS(h, tls_ssf))
		ssf = (sasl_ssf_t)h->tls_ssf(s);
	if (POPLAR_HOST_HAS(h, tls_peer_identity))
		id = h->tls_peer_identity(s);
	if (sasl_setprop(conn, SASL_SEC_PROPS, &props) != SASL_OK ||
	    sasl_setprop(conn, SASL_SSF_EXTERNAL, &ssf) != SASL_OK ||
	    (id != NULL && sasl_setprop(conn, SASL_AUTH_EXTERNAL, id)
	     != SASL_OK)) {
		*error_r = sasl_errdetail(conn);
		sasl_dispose(&conn);
		return NULL;
	}
	return conn;
}

/* The one list of mechanisms offered on this session now: CAPA's SASL
 * line, a bare AUTH and what AUTH MECH accepts all come from here.
 * Returns the count; out gets the space-separated names. */
static size_t
offered_mechs(struct sasl_mod *m, struct poplar_session *s,
	      sasl_conn_t *conn, char *out, size_t size)
{
	char filtered[SASL_MECHLIST_MAX + 1];
	const char *list = NULL;
	size_t n = 0, used = 0;
	const char *p;

	out[0] = '\0';
	if (sasl_listmech(conn, NULL, "", " ", "", &list, NULL, NULL)
	    != SASL_OK)
		return 0;
	saslc_filter_mechs(list, m->host->plaintext_allowed(s) != 0,
			   filtered, sizeof(filtered));
	/* Kerberos mechanisms need the principal policy. */
	for (p = filtered; *p != '\0';) {
		size_t len = strcspn(p, " ");
		char name[SASL_MECH_NAME_MAX + 1];

		if (len > 0 && len <= SASL_MECH_NAME_MAX) {
			memcpy(name, p, len);
			name[len] = '\0';
			if ((m->kerberos_ok || !mech_is_kerberos(name)) &&
			    used + len + 2 <= size) {
				if (used > 0)
					out[used++] = ' ';
				memcpy(out + used, name, len + 1);
				used += len;
				n++;
			}
		}
		p += len;
		while (*p == ' ')
			p++;
	}
	return n;
}

/* The list for a session without a connection at hand (CAPA). */
static size_t
session_mechs(struct sasl_mod *m, struct poplar_session *s, char *out,
	      size_t size)
{
	const char *error = NULL;
	sasl_conn_t *conn;
	size_t n;

	out[0] = '\0';
	conn = conn_new(m, s, &error);
	if (conn == NULL) {
		m->host->log(POPLAR_LOG_ERROR, "sasl: cannot list mechanisms: "
			     "%s", error ? error : "unknown error");
		return 0;
	}
	n = offered_mechs(m, s, conn, out, size);
	sasl_dispose(&conn);
	return n;
}

/* ---- the exchange ------------------------------------------------------------ */

struct exchange_bufs {
	char *line;             /* SASL_LINE_MAX + 2 bytes */
	unsigned char *data;    /* decoded client data */
	char *enc;              /* encoded server data */
	size_t enc_size;
};

static void
bufs_free(const struct poplar_host *h, struct exchange_bufs *b)
{
	if (b->line != NULL) {
		h->wipe(b->line, SASL_LINE_MAX + 2);
		free(b->line);
	}
	if (b->data != NULL) {
		h->wipe(b->data, SASL_DATA_MAX + 1);
		free(b->data);
	}
	free(b->enc);
	memset(b, 0, sizeof(*b));
}

/* Send server data as a "+ BASE64" continuation.  0 or -1. */
static int
send_challenge(const struct poplar_host *h, struct poplar_session *s,
	       struct exchange_bufs *b, const char *data, unsigned len)
{
	size_t need = (size_t)len / 3 * 4 + 8;

	if (need > b->enc_size) {
		char *n = realloc(b->enc, need);

		if (n == NULL)
			return -1;
		b->enc = n;
		b->enc_size = need;
	}
	b->enc[0] = '+';
	b->enc[1] = ' ';
	if (saslc_b64_encode((const unsigned char *)data, len, b->enc + 2,
			     b->enc_size - 2) < 0)
		return -1;
	return h->send_line(s, b->enc);
}

enum client_reply {
	REPLY_DATA,             /* decoded data in b->data */
	REPLY_CANCEL,           /* "*" */
	REPLY_BAD_BASE64,
	REPLY_GONE              /* EOF, timeout, or an over-long line */
};

static enum client_reply
read_reply(const struct poplar_host *h, struct poplar_session *s,
	   struct exchange_bufs *b, size_t *len_r)
{
	/* Room for SASL_LINE_MAX bytes, a CR and the NUL. */
	long n = h->read_line(s, b->line, SASL_LINE_MAX + 2);

	*len_r = 0;
	if (n < 0 || n > SASL_LINE_MAX)
		return REPLY_GONE;
	if (strcmp(b->line, "*") == 0)
		return REPLY_CANCEL;
	if (saslc_b64_decode(b->line, (size_t)n, b->data, SASL_DATA_MAX,
			     len_r) < 0)
		return REPLY_BAD_BASE64;
	return REPLY_DATA;
}

/* An outcome for what read_reply said, other than REPLY_DATA. */
static enum poplar_outcome
reply_outcome(const struct poplar_host *h, struct poplar_session *s,
	      enum client_reply r, struct poplar_outcome_info *out)
{
	switch (r) {
	case REPLY_CANCEL:
		out->message = "authentication cancelled";
		return POPLAR_ERR;
	case REPLY_BAD_BASE64:
		out->message = "invalid base64 data in AUTH exchange";
		return POPLAR_ERR;
	default:
		/* The client went away, stalled past the idle timeout, or
		 * sent a line longer than SASL_LINE_MAX: end the session. */
		h->log(POPLAR_LOG_INFO, "sasl: AUTH ended: no client line (end "
		       "of stream, idle timeout, or longer than %d bytes)",
		       SASL_LINE_MAX);
		(void)h->send_line(s, "-ERR authentication aborted");
		return POPLAR_DISCONNECT;
	}
}

/* The value of a Cyrus option given in [module sasl], or NULL. */
static const char *
opt_value(const struct sasl_mod *m, const char *key)
{
	for (size_t i = 0; i < m->nopts; i++)
		if (strcmp(m->opts[i].key, key) == 0)
			return m->opts[i].value;
	return NULL;
}

/* Cyrus reports a sasldb it cannot open as an unknown user.  When
 * [module sasl] names the sasldb, an outage is told apart here: 0 when
 * the file opens, -1 with *error_r otherwise. */
static int
check_sasldb(const struct sasl_mod *m, const char *mech,
	     const char **error_r)
{
	static char why[300];
	const char *path = opt_value(m, "sasldb_path");
	int fd;

	if (path == NULL || mech_is_kerberos(mech) ||
	    strcmp(mech, "EXTERNAL") == 0)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, sizeof(why), "sasldb %s cannot be read: %s",
			 path, strerror(errno));
		*error_r = why;
		return -1;
	}
	close(fd);
	return 0;
}

/* Static storage for a reason the core logs right after we return. */
static char reason_buf[300];

static const char *
set_reason(const char *prefix, const char *text)
{
	snprintf(reason_buf, sizeof(reason_buf), "%s%s", prefix,
		 text ? text : "");
	return reason_buf;
}

/* Turn the identity Cyrus authenticated into a local user in out->user.
 * 0, or -1 with out->reason. */
static int
map_identity(struct sasl_mod *m, const char *mech, const char *identity,
	     struct poplar_outcome_info *out)
{
	if (mech_is_kerberos(mech)) {
#ifdef SASL_PRINCIPAL_POLICY
		krb5_principal princ = NULL;
		const char *rule = NULL, *error = NULL;
		int r;

		/* Cyrus gives "user" for a principal of the default realm and
		 * "user@REALM" otherwise: parsing restores the principal. */
		if (krb5_parse_name(m->kctx, identity, &princ) != 0) {
			out->reason = "unparsable Kerberos principal";
			return -1;
		}
		r = principal_map(m->kctx, m->princ, princ, out->user,
				  sizeof(out->user), &rule, &error);
		krb5_free_principal(m->kctx, princ);
		if (r != 1) {
			out->reason = set_reason("principal not mapped: ",
						 error);
			return -1;
		}
		snprintf(out->detail + strlen(out->detail),
			 sizeof(out->detail) - strlen(out->detail),
			 " map=%s", rule ? rule : "?");
		return 0;
#endif
	}
	if (saslc_local_user(identity, m->realm, out->user,
			     sizeof(out->user)) < 0) {
		out->reason = "SASL identity is not a local user name of "
			      "this realm";
		return -1;
	}
	return 0;
}

/* Run the exchange of mech on conn: initial response ir (NULL for none),
 * continuations, and the result. */
static enum poplar_outcome
exchange(struct sasl_mod *m, struct poplar_session *s, sasl_conn_t *conn,
	 const char *mech, const char *ir, struct poplar_outcome_info *out)
{
	const struct poplar_host *h = m->host;
	struct exchange_bufs b = { NULL, NULL, NULL, 0 };
	enum poplar_outcome result = POPLAR_LOGIN_FAIL;
	const char *clientin = NULL, *srv = NULL;
	unsigned clientinlen = 0, srvlen = 0;
	const void *prop = NULL;
	enum client_reply cr;
	size_t len = 0;
	int r, steps;

	b.line = malloc(SASL_LINE_MAX + 2);
	b.data = malloc(SASL_DATA_MAX + 1);
	if (b.line == NULL || b.data == NULL) {
		out->reason = "out of memory";
		result = POPLAR_TEMPFAIL;
		goto cleanup;
	}
	if (ir != NULL) {
		/* "=" is an empty initial response (RFC 5034 section 4). */
		if (strcmp(ir, "=") != 0 &&
		    saslc_b64_decode(ir, strlen(ir), b.data, SASL_DATA_MAX,
				     &len) < 0) {
			out->message = "invalid base64 initial response";
			result = POPLAR_ERR;
			goto cleanup;
		}
		clientin = (const char *)b.data;
		clientinlen = (unsigned)len;
	}
	if (check_sasldb(m, mech, &out->reason) < 0) {
		h->log(POPLAR_LOG_ERROR, "sasl: %s", out->reason);
		result = POPLAR_TEMPFAIL;
		goto cleanup;
	}
	exchange_log.active = true;
	exchange_log.backend_error = false;
	exchange_log.message[0] = '\0';

	/* Cyrus leaves serverout alone on some results: reset it before
	 * every call so that stale data is never sent. */
	srv = NULL;
	srvlen = 0;
	r = sasl_server_start(conn, mech, clientin, clientinlen, &srv, &srvlen);
	for (steps = 0; r == SASL_CONTINUE; steps++) {
		if (steps >= SASL_STEPS_MAX) {
			out->reason = "too many steps in the exchange";
			result = POPLAR_LOGIN_FAIL;
			goto cleanup;
		}
		if (send_challenge(h, s, &b, srv, srvlen) < 0) {
			result = POPLAR_DISCONNECT;
			goto cleanup;
		}
		cr = read_reply(h, s, &b, &len);
		if (cr != REPLY_DATA) {
			result = reply_outcome(h, s, cr, out);
			goto cleanup;
		}
		srv = NULL;
		srvlen = 0;
		r = sasl_server_step(conn, (const char *)b.data, (unsigned)len,
				     &srv, &srvlen);
	}
	if (r == SASL_OK && srvlen > 0) {
		/* POP3 has no success with data (RFC 5034 section 4): the
		 * last server data (DIGEST-MD5 rspauth, SCRAM's v=) goes out
		 * as a challenge, answered by an empty line. */
		if (send_challenge(h, s, &b, srv, srvlen) < 0) {
			result = POPLAR_DISCONNECT;
			goto cleanup;
		}
		cr = read_reply(h, s, &b, &len);
		if (cr != REPLY_DATA) {
			result = reply_outcome(h, s, cr, out);
			goto cleanup;
		}
		if (len != 0) {
			out->reason = "client answered the final server data";
			result = POPLAR_LOGIN_FAIL;
			goto cleanup;
		}
	}
	if (r != SASL_OK) {
		/* SASL_FAIL is Cyrus's "generic failure": a backend that
		 * could not answer (saslauthd down), not a wrong secret. */
		if (exchange_log.backend_error || r == SASL_FAIL ||
		    r == SASL_UNAVAIL || r == SASL_NOMEM ||
		    r == SASL_TRYAGAIN || r == SASL_CONFIGERR) {
			out->reason = set_reason("SASL backend failed: ",
						 exchange_log.message[0]
						 ? exchange_log.message
						 : sasl_errdetail(conn));
			result = POPLAR_TEMPFAIL;
		} else {
			out->reason = set_reason("", sasl_errdetail(conn));
			result = POPLAR_LOGIN_FAIL;
		}
		goto cleanup;
	}

	/* Cyrus has applied its proxy policy: an authorization id other
	 * than the authenticated one was refused above unless allowed. */
	if (sasl_getprop(conn, SASL_USERNAME, &prop) != SASL_OK ||
	    prop == NULL) {
		out->reason = "SASL gave no user name";
		result = POPLAR_LOGIN_FAIL;
		goto cleanup;
	}
	snprintf(out->detail, sizeof(out->detail), "mech=%s", mech);
	if (map_identity(m, mech, prop, out) < 0) {
		/* For the log: who it was. */
		snprintf(out->user, sizeof(out->user), "%s",
			 (const char *)prop);
		result = POPLAR_LOGIN_FAIL;
		goto cleanup;
	}
	result = POPLAR_LOGIN;
cleanup:
	exchange_log.active = false;
	bufs_free(h, &b);
	return result;
}

/* ---- commands -------------------------------------------------------------- */

static enum poplar_outcome
cmd_auth(struct poplar_session *s, void *sess, unsigned int argc,
	 char **argv, struct poplar_outcome_info *out)
{
	struct sasl_mod *m = the_mod;
	const struct poplar_host *h = m->host;
	char list[SASL_MECHLIST_MAX + 1];
	char mech[SASL_MECH_NAME_MAX + 1];
	const char *error = NULL;
	enum poplar_outcome result;
	sasl_conn_t *conn;

	(void)sess;
	out->method = "sasl";
	conn = conn_new(m, s, &error);
	if (conn == NULL) {
		out->reason = set_reason("cannot start SASL: ", error);
		return POPLAR_TEMPFAIL;
	}
	offered_mechs(m, s, conn, list, sizeof(list));
	if (argc == 0) {
		/* A bare AUTH lists the mechanisms (clients use it for
		 * discovery), one per line. */
		const char *p = list;

		sasl_dispose(&conn);
		h->send_line(s, "+OK SASL mechanisms follow");
		while (*p != '\0') {
			char name[SASL_MECH_NAME_MAX + 1];
			size_t len = strcspn(p, " ");

			if (len > 0 && len <= SASL_MECH_NAME_MAX) {
				memcpy(name, p, len);
				name[len] = '\0';
				h->send_line(s, name);
			}
			p += len;
			while (*p == ' ')
				p++;
		}
		h->send_line(s, ".");
		return POPLAR_QUIET;
	}
	if (!saslc_mech_in_list(list, argv[0], mech)) {
		sasl_dispose(&conn);
		out->message = "unknown or unavailable SASL mechanism";
		if (argc > 1)
			h->wipe(argv[1], strlen(argv[1]));
		return POPLAR_ERR;
	}
	result = exchange(m, s, conn, mech, argc > 1 ? argv[1] : NULL, out);
	if (argc > 1)
		h->wipe(argv[1], strlen(argv[1]));
	sasl_dispose(&conn);
	return result;
}

static void
sasl_capa(void *mod, void *sess, struct poplar_session *s,
	  void (*emit)(struct poplar_session *s, const char *line))
{
	char list[SASL_MECHLIST_MAX + 1], line[SASL_MECHLIST_MAX + 8];

	(void)sess;
	if (session_mechs(mod, s, list, sizeof(list)) == 0)
		return;
	snprintf(line, sizeof(line), "SASL %s", list);
	emit(s, line);
}

static size_t
sasl_policy(void *mod, struct poplar_method_policy *out, size_t max)
{
	struct sasl_mod *m = mod;
	size_t n = 0;

	for (size_t i = 0; i < m->npolicy && n < max; i++) {
		out[n].name = m->policy_names[i];
		out[n].flags = m->policy_flags[i];
		n++;
	}
	return n;
}

/* ---- set-up -------------------------------------------------------------------- */

static void
mod_free(struct sasl_mod *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nopts; i++) {
		free(m->opts[i].key);
		free(m->opts[i].value);
	}
	free(m->opts);
	for (size_t i = 0; i < m->npolicy; i++)
		free(m->policy_names[i]);
	free(m->service);
	free(m->realm);
#ifdef SASL_PRINCIPAL_POLICY
	principal_policy_free(&m->princ);
	if (m->kctx != NULL)
		krb5_free_context(m->kctx);
#endif
	free(m);
}

/* A Cyrus option name: lower-case letters, digits and '_'. */
static bool
valid_option_name(const char *key)
{
	if (*key == '\0')
		return false;
	for (const char *p = key; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '_'))
			return false;
	return true;
}

/* Fill the --policy table: every mechanism that Cyrus would offer on
 * some session (mech_list applied), plaintext ones included (the core
 * offers those only where plaintext_auth allows), EXTERNAL included (it
 * is offered only inside TLS with a verified client certificate). */
static void
build_policy(struct sasl_mod *m)
{
	sasl_security_properties_t props;
	char names[SASL_MECHLIST_MAX + 1];
	sasl_conn_t *conn = NULL;
	const char *list = NULL;
	sasl_ssf_t ssf = 256;

	if (sasl_server_new(m->service, m->host->hostname(), m->realm, NULL,
			    NULL, NULL, 0, &conn) != SASL_OK)
		return;
	memset(&props, 0, sizeof(props));
	props.security_flags = SASL_SEC_NOANONYMOUS;
	if (sasl_setprop(conn, SASL_SEC_PROPS, &props) != SASL_OK ||
	    sasl_setprop(conn, SASL_SSF_EXTERNAL, &ssf) != SASL_OK ||
	    sasl_setprop(conn, SASL_AUTH_EXTERNAL, "policy") != SASL_OK ||
	    sasl_listmech(conn, NULL, "", " ", "", &list, NULL, NULL)
	    != SASL_OK) {
		sasl_dispose(&conn);
		return;
	}
	saslc_filter_mechs(list, true, names, sizeof(names));
	sasl_dispose(&conn);
	for (const char *p = names; *p != '\0' &&
	     m->npolicy < sizeof(m->policy_names) / sizeof(m->policy_names[0]);) {
		size_t len = strcspn(p, " ");
		char name[SASL_MECH_NAME_MAX + 1];

		memcpy(name, p, len);
		name[len] = '\0';
		if (m->kerberos_ok || !mech_is_kerberos(name)) {
			char *full = malloc(len + 6);

			if (full != NULL) {
				snprintf(full, len + 6, "SASL %s", name);
				m->policy_names[m->npolicy] = full;
				m->policy_flags[m->npolicy] =
					saslc_mech_policy(name);
				m->npolicy++;
			}
		}
		p += len;
		while (*p == ' ')
			p++;
	}
}

/* Does Cyrus offer a Kerberos mechanism at all? */
static bool
kerberos_loaded(void)
{
	const char **all = sasl_global_listmech();

	for (size_t i = 0; all != NULL && all[i] != NULL; i++)
		if (mech_is_kerberos(all[i]))
			return true;
	return false;
}

static int
sasl_mod_init(const struct poplar_host *host,
	      const struct poplar_config_item *items, size_t nitems,
	      void **mod_r, const struct poplar_config_item **item_r,
	      const char **error_r)
{
	static char msg[512];
	struct sasl_mod *m = calloc(1, sizeof(*m));
	bool principal_keys = false;
	int r;

	*item_r = NULL;
	if (m == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	m->host = host;
#ifdef SASL_PRINCIPAL_POLICY
	m->princ = principal_policy_new();
	if (m->princ == NULL) {
		*error_r = "out of memory";
		goto fail;
	}
#endif
	for (size_t i = 0; i < nitems; i++) {
		const char *key = items[i].key, *value = items[i].value;
		char **slot = NULL;

		*item_r = &items[i];
		if (strcmp(key, "service") == 0)
			slot = &m->service;
		else if (strcmp(key, "realm") == 0)
			slot = &m->realm;
		if (slot != NULL) {
			if (*value == '\0' || strpbrk(value, " \t/@") != NULL) {
				*error_r = "service and realm must be one word "
					   "without '/' or '@'";
				goto fail;
			}
			free(*slot);
			*slot = strdup(value);
			if (*slot == NULL) {
				*error_r = "out of memory";
				goto fail;
			}
			continue;
		}
		if (strcmp(key, "realms") == 0 ||
		    strcmp(key, "principal_map") == 0 ||
		    strcmp(key, "kuserok") == 0) {
#ifdef SASL_PRINCIPAL_POLICY
			const char *error = NULL;

			if (principal_policy_set(m->princ, key, value, &error)
			    < 0) {
				*error_r = error;
				goto fail;
			}
			principal_keys = true;
			continue;
#else
			*error_r = "poplar was built without Kerberos: "
				   "principal mapping keys are not available";
			goto fail;
#endif
		}
		/* Anything else is a Cyrus SASL option. */
		if (!valid_option_name(key)) {
			*error_r = "not a Cyrus SASL option name";
			goto fail;
		}
		{
			struct sasl_opt *n;
			size_t k;

			/* A key given twice: the last value counts. */
			for (k = 0; k < m->nopts; k++)
				if (strcmp(m->opts[k].key, key) == 0)
					break;
			if (k < m->nopts) {
				char *v = strdup(value);

				if (v == NULL) {
					*error_r = "out of memory";
					goto fail;
				}
				free(m->opts[k].value);
				m->opts[k].value = v;
				continue;
			}
			n = realloc(m->opts, (m->nopts + 1) * sizeof(*n));

			if (n == NULL) {
				*error_r = "out of memory";
				goto fail;
			}
			m->opts = n;
			n[m->nopts].key = strdup(key);
			n[m->nopts].value = strdup(value);
			if (n[m->nopts].key == NULL ||
			    n[m->nopts].value == NULL) {
				free(n[m->nopts].key);
				free(n[m->nopts].value);
				*error_r = "out of memory";
				goto fail;
			}
			m->nopts++;
		}
	}
	*item_r = NULL;
	if (m->service == NULL && (m->service = strdup("pop")) == NULL) {
		*error_r = "out of memory";
		goto fail;
	}
	m->callbacks[0].id = SASL_CB_GETOPT;
	m->callbacks[0].proc = (int (*)(void))(void (*)(void))cb_getopt;
	m->callbacks[0].context = m;
	m->callbacks[1].id = SASL_CB_LOG;
	m->callbacks[1].proc = (int (*)(void))(void (*)(void))cb_log;
	m->callbacks[1].context = m;
	m->callbacks[2].id = SASL_CB_LIST_END;
	/* The application name is the service: Cyrus also reads
	 * SERVICE.conf from its configuration path (/etc/sasl2); keys of
	 * [module sasl] win over that file. */
	r = sasl_server_init(m->callbacks, m->service);
	if (r != SASL_OK) {
		snprintf(msg, sizeof(msg), "Cyrus SASL initialisation failed: "
			 "%s", sasl_errstring(r, NULL, NULL));
		*error_r = msg;
		goto fail;
	}
	m->cyrus_up = true;

	m->kerberos_ok = false;
#ifdef SASL_PRINCIPAL_POLICY
	if (kerberos_loaded() || principal_keys) {
		const char *error = NULL;
		krb5_error_code kr = krb5_init_context(&m->kctx);

		if (kr != 0) {
			m->kctx = NULL;
			error = "cannot initialise Kerberos (krb5.conf)";
		} else if (principal_policy_finish(m->princ, m->kctx, &error)
			   == 0) {
			m->kerberos_ok = true;
		}
		if (!m->kerberos_ok) {
			snprintf(msg, sizeof(msg), "Kerberos principal mapping: "
				 "%s", error ? error : "unknown error");
			if (principal_keys) {
				*error_r = msg;
				goto fail;
			}
			host->log(POPLAR_LOG_WARNING, "sasl: %s; GSSAPI is "
				  "not offered", msg);
		}
	}
#else
	(void)principal_keys;
	/* Cyrus strips the default realm from GSSAPI principals; the rest
	 * of the identity rules apply as for any mechanism. */
	m->kerberos_ok = kerberos_loaded();
#endif
	build_policy(m);
	if (m->npolicy == 0) {
		*error_r = "Cyrus SASL offers no mechanism (check mech_list "
			   "and that the plugins are installed)";
		goto fail;
	}
	the_mod = m;
	*mod_r = m;
	return 0;
fail:
	if (m->cyrus_up)
		sasl_server_done();
	mod_free(m);
	return -1;
}

static void
sasl_mod_fini(void *mod)
{
	struct sasl_mod *m = mod;

	if (m == NULL)
		return;
	if (m->cyrus_up)
		sasl_server_done();
	if (the_mod == m)
		the_mod = NULL;
	mod_free(m);
}

static const struct poplar_command sasl_commands[] = {
	{ "AUTH", 0, 2, 0, cmd_auth },
	{ NULL, 0, 0, 0, NULL }
};

const struct poplar_module poplar_module = {
	.abi_major = POPLAR_MODULE_ABI_MAJOR,
	.abi_minor = POPLAR_MODULE_ABI_MINOR,
	.name = "sasl",
	.version = "1.0",
	.description = "AUTH (RFC 5034) through Cyrus SASL: PLAIN, CRAM-MD5, "
		       "SCRAM, GSSAPI, EXTERNAL, ...",
	.init = sasl_mod_init,
	.fini = sasl_mod_fini,
	.capa = sasl_capa,
	.commands = sasl_commands,
	.policy = sasl_policy,
};
