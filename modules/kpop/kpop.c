/* kpop.c: the kpop module: Kerberized POP (KPOP, port 1109) with MIT krb5.
 *
 * The client authenticates before the greeting with krb5_sendauth (see
 * kpop_wire.h for the bytes).  This module does the server's side of that
 * exchange itself, through the host's read_exact/write_all, so that it
 * works on sockets, under inetd and over a socketpair in tests: it checks
 * and bounds every length before any krb5 call, and calls krb5 only to
 * verify the AP-REQ (krb5_rd_req, with a replay cache) and to build the
 * AP-REP or a KRB-ERROR.  The ticket's client principal is mapped to a
 * local user by the shared principal policy (auth/principal.h).
 *
 * After the greeting the client sends USER and PASS as in RFC 1939: USER
 * must name the mapped user, PASS's argument is ignored (fetchmail sends
 * "krb_ticket", other clients the user name).
 *
 * Runs as root when poplard does: the whole exchange, the keytab read
 * and the mapping happen before the core drops privileges. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <krb5.h>
#include "poplar-module.h"
#include "krb5check.h"
#include "kpop_wire.h"
#include "principal.h"

/* The whole pre-greeting exchange must finish within this many seconds
 * by default: a client that has a ticket needs one round trip. */
#define KPOP_TIMEOUT_DEFAULT 10
#define KPOP_TIMEOUT_MAX 120
/* How long to wait for the rest of "AUTHV0.1" once "AUTH" came. */
#define KPOP_PEEK_MS 2000

struct kpop_mod {
	const struct poplar_host *host;
	char *keytab;                   /* NULL: the default keytab */
	char *service;
	char *hostname;                 /* "*": any host key */
	unsigned int timeout;           /* seconds */
	struct principal_policy *policy;
};

struct kpop_sess {
	bool authed;                    /* the exchange succeeded */
	char user[POPLAR_USER_MAX + 1]; /* mapped local user */
	char principal[256];            /* for the log, made printable */
	char realm[128];
	char rule[48];
	bool have_user;
	char given[POPLAR_USER_MAX + 1];
	bool given_too_long;
	char reason[400];               /* for a failed login's log line */
};

static struct kpop_mod *the_mod;

/* ---- configuration --------------------------------------------------- */

static int
set_string(char **dst, const char *value, const char **error_r)
{
	free(*dst);
	*dst = strdup(value);
	if (*dst == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	return 0;
}

static void
kpop_fini(void *mod)
{
	struct kpop_mod *m = mod;

	if (m == NULL)
		return;
	principal_policy_free(&m->policy);
	free(m->keytab);
	free(m->service);
	free(m->hostname);
	free(m);
}

static int
kpop_init(const struct poplar_host *host,
	  const struct poplar_config_item *items, size_t nitems, void **mod_r,
	  const struct poplar_config_item **item_r, const char **error_r)
{
	struct kpop_mod *m = calloc(1, sizeof(*m));
	krb5_context ctx = NULL;
	int r;

	if (m == NULL || (m->policy = principal_policy_new()) == NULL) {
		free(m);
		*error_r = "out of memory";
		return -1;
	}
	m->host = host;
	m->timeout = KPOP_TIMEOUT_DEFAULT;
	for (size_t i = 0; i < nitems; i++) {
		const char *k = items[i].key, *v = items[i].value;

		*item_r = &items[i];
		r = principal_policy_set(m->policy, k, v, error_r);
		if (r < 0)
			goto fail;
		if (r == 1)
			continue;
		if (strcmp(k, "keytab") == 0) {
			if (*v == '\0') {
				*error_r = "keytab needs a value";
				goto fail;
			}
			if (set_string(&m->keytab, v, error_r) < 0)
				goto fail;
		} else if (strcmp(k, "service") == 0) {
			if (*v == '\0' || strpbrk(v, "/@ \t") != NULL) {
				*error_r = "service must be one name without "
					   "'/', '@' or blanks";
				goto fail;
			}
			if (set_string(&m->service, v, error_r) < 0)
				goto fail;
		} else if (strcmp(k, "host") == 0) {
			if (*v == '\0' || strpbrk(v, "/@ \t") != NULL) {
				*error_r = "host must be a host name or *";
				goto fail;
			}
			if (set_string(&m->hostname, v, error_r) < 0)
				goto fail;
		} else if (strcmp(k, "timeout") == 0) {
			char *end;
			unsigned long t = strtoul(v, &end, 10);

			if (*v < '1' || *v > '9' || *end != '\0' || t == 0 ||
			    t > KPOP_TIMEOUT_MAX) {
				*error_r = "timeout must be 1 to 120 seconds";
				goto fail;
			}
			m->timeout = (unsigned int)t;
		} else {
			*error_r = "unknown key (known: keytab, service, host, "
				   "timeout, realms, principal_map, kuserok)";
			goto fail;
		}
	}
	*item_r = NULL;
	if ((m->service == NULL && set_string(&m->service, "pop",
					      error_r) < 0) ||
	    (m->hostname == NULL && set_string(&m->hostname, host->hostname(),
					       error_r) < 0))
		goto fail;
	if (krb5_init_context(&ctx) != 0) {
		*error_r = "cannot initialise Kerberos (check krb5.conf or "
			   "KRB5_CONFIG)";
		goto fail;
	}
	if (principal_policy_finish(m->policy, ctx, error_r) < 0)
		goto fail;
	krb5_free_context(ctx);
	*mod_r = m;
	return 0;
fail:
	if (ctx != NULL)
		krb5_free_context(ctx);
	kpop_fini(m);
	return -1;
}

static int
kpop_check(void *mod, FILE *out, int verbose)
{
	struct kpop_mod *m = mod;
	struct krb5_setup st = {
		.keytab = m->keytab, .service = m->service,
		.host = m->hostname, .need_rcache = true,
	};
	krb5_context ctx;
	int rc;

	if (krb5_init_context(&ctx) != 0) {
		fprintf(out, "  problem: kpop: cannot initialise Kerberos\n");
		return -1;
	}
	if (verbose)
		fprintf(out, "  pre-greeting timeout: %u s\n", m->timeout);
	rc = krb5_setup_check(ctx, &st, m->policy, out, verbose);
	krb5_free_context(ctx);
	return rc;
}

/* ---- the exchange ------------------------------------------------------ */

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct exchange {
	struct kpop_mod *m;
	struct poplar_session *s;
	long long deadline;
	const char *phase;              /* for the log */
	bool timed_out;
};

static int
xread(struct exchange *x, void *buf, size_t len, const char *phase)
{
	long long left = x->deadline - now_ms();

	x->phase = phase;
	if (left <= 0) {
		x->timed_out = true;
		return -1;
	}
	if (x->m->host->read_exact(x->s, buf, len, (int)left) < 0) {
		x->timed_out = now_ms() >= x->deadline;
		return -1;
	}
	return 0;
}

static int
xwrite_msg(struct exchange *x, const void *data, uint32_t len)
{
	unsigned char hdr[4];

	kpop_put_len(hdr, len);
	if (x->m->host->write_all(x->s, hdr, 4) < 0)
		return -1;
	return len == 0 ? 0 : x->m->host->write_all(x->s, data, len);
}

/* A reply line before the session's POP3 starts, written and flushed
 * at once (the connection closes right after). */
static void
send_now(struct kpop_mod *m, struct poplar_session *s, const char *line)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "%s\r\n", line);

	if (n > 0 && (size_t)n < sizeof(buf))
		(void)m->host->write_all(s, buf, (size_t)n);
}

static void
log_fail(struct exchange *x, const char *reason, const char *extra)
{
	x->m->host->log(POPLAR_LOG_WARNING, "kpop-fail peer=%s listener=%s "
			"reason=\"%s%s%s\"", x->m->host->peer_address(x->s),
			x->m->host->listener_name(x->s), reason,
			extra ? ": " : "", extra ? extra : "");
}

static void
log_io_fail(struct exchange *x)
{
	char what[128];

	snprintf(what, sizeof(what), "%s while reading the %s",
		 x->timed_out ? "timed out" : "connection closed", x->phase);
	log_fail(x, what, NULL);
}

/* Read and check the two version messages; answer the status byte.
 * 0 when both are right. */
static int
read_versions(struct exchange *x)
{
	unsigned char hdr[4], more[4], ver[KPOP_APPL_VERSION_MAX];
	char shown[24];
	unsigned char response = KPOP_RESPONSE_OK;
	enum kpop_first first;
	uint32_t len;

	if (xread(x, hdr, 4, "sendauth version") < 0) {
		log_io_fail(x);
		return -1;
	}
	first = kpop_classify_first(hdr);
	if (first == KPOP_FIRST_AUTH) {
		long long saved = x->deadline;

		/* "AUTHV0.1" is Kerberos 4's sendauth; "AUTH ..." POP3. */
		if (x->deadline > now_ms() + KPOP_PEEK_MS)
			x->deadline = now_ms() + KPOP_PEEK_MS;
		if (xread(x, more, 4, "sendauth version") == 0 &&
		    kpop_is_krb4(more)) {
			log_fail(x, "Kerberos 4 client (AUTHV0.1 KPOPV0.1): "
				 "only Kerberos 5 is supported", NULL);
			return -1;
		}
		x->deadline = saved;
		first = KPOP_FIRST_POP3;
	}
	if (first != KPOP_FIRST_SENDAUTH) {
		kpop_printable(hdr, 4, shown, sizeof(shown));
		log_fail(x, kpop_first_describe(first), shown);
		if (first == KPOP_FIRST_POP3)
			send_now(x->m, x->s, "-ERR this port speaks KPOP: "
				 "Kerberos 5 sendauth first");
		return -1;
	}
	if (xread(x, ver, KPOP_SENDAUTH_VERSION_LEN, "sendauth version") < 0) {
		log_io_fail(x);
		return -1;
	}
	if (memcmp(ver, KPOP_SENDAUTH_VERSION, KPOP_SENDAUTH_VERSION_LEN) != 0)
		response = KPOP_RESPONSE_BAD_SENDAUTH;

	if (xread(x, hdr, 4, "application version") < 0) {
		log_io_fail(x);
		return -1;
	}
	if (!kpop_len_ok(hdr, KPOP_APPL_VERSION_MAX, &len)) {
		log_fail(x, "application version length out of bounds", NULL);
		return -1;
	}
	if (xread(x, ver, len, "application version") < 0) {
		log_io_fail(x);
		return -1;
	}
	if (response == KPOP_RESPONSE_OK &&
	    (len != KPOP_APPL_VERSION_LEN ||
	     memcmp(ver, KPOP_APPL_VERSION, KPOP_APPL_VERSION_LEN) != 0))
		response = KPOP_RESPONSE_BAD_APPL;
	if (x->m->host->write_all(x->s, &response, 1) < 0) {
		log_fail(x, "cannot answer the version messages", NULL);
		return -1;
	}
	if (response != KPOP_RESPONSE_OK) {
		kpop_printable(ver, len, shown, sizeof(shown));
		log_fail(x, response == KPOP_RESPONSE_BAD_SENDAUTH
			 ? "bad sendauth version"
			 : "bad application version (expected KPOPV1.0)",
			 shown);
		return -1;
	}
	return 0;
}

/* What a refused AP-REQ means, for the log. */
static const char *
rd_req_reason(krb5_error_code ret)
{
	switch (ret) {
	case KRB5KRB_AP_ERR_SKEW:
		return "clock skew too great between client and server";
	case KRB5KRB_AP_ERR_REPEAT:
		return "replayed request (seen in the replay cache)";
	case KRB5KRB_AP_WRONG_PRINC:
	case KRB5KRB_AP_ERR_NOT_US:
	case KRB5_KT_NOTFOUND:
		return "ticket for another service";
	case KRB5KRB_AP_ERR_TKT_EXPIRED:
		return "ticket expired";
	case KRB5KRB_AP_ERR_BAD_INTEGRITY:
	case KRB5KRB_AP_ERR_BADKEYVER:
		return "ticket not decryptable with the keytab's key";
	default:
		return "AP-REQ refused";
	}
}

/* Send a KRB-ERROR for ret, as krb5_recvauth does. */
static void
send_krb_error(struct exchange *x, krb5_context ctx, krb5_principal server,
	       krb5_error_code ret)
{
	krb5_error err;
	krb5_data out = { 0 };
	krb5_principal dummy = NULL;
	const char *text = krb5_get_error_message(ctx, ret);

	memset(&err, 0, sizeof(err));
	krb5_us_timeofday(ctx, &err.stime, &err.susec);
	if (server == NULL && krb5_parse_name(ctx, "????", &dummy) != 0)
		goto out;
	err.server = server != NULL ? server : dummy;
	err.error = ret - ERROR_TABLE_BASE_krb5;
	if (ret < ERROR_TABLE_BASE_krb5 || err.error > 127)
		err.error = KRB5KRB_ERR_GENERIC - ERROR_TABLE_BASE_krb5;
	err.text.data = (char *)text;
	err.text.length = (unsigned int)strlen(text) + 1;
	if (krb5_mk_error(ctx, &err, &out) == 0) {
		(void)xwrite_msg(x, out.data, out.length);
		krb5_free_data_contents(ctx, &out);
	}
out:
	krb5_free_error_message(ctx, text);
	krb5_free_principal(ctx, dummy);
}

static void
printable_copy(char *dst, size_t size, const char *src)
{
	kpop_printable((const unsigned char *)src, strlen(src), dst, size);
}

static enum poplar_outcome
kpop_connect(void *mod, void *sess, struct poplar_session *s,
	     struct poplar_outcome_info *out)
{
	struct kpop_mod *m = mod;
	struct kpop_sess *ks = sess;
	struct exchange x = { .m = m, .s = s };
	krb5_context ctx = NULL;
	krb5_auth_context ac = NULL;
	krb5_principal server = NULL;
	krb5_keytab kt = NULL;
	krb5_rcache rc = NULL;
	krb5_ticket *ticket = NULL;
	krb5_flags ap_options = 0;
	krb5_data apreq = { 0 }, aprep = { 0 }, piece;
	krb5_error_code ret;
	unsigned char hdr[4];
	char *cname = NULL;
	const char *rule = NULL, *why = NULL;
	enum poplar_outcome result = POPLAR_DISCONNECT;
	uint32_t len;
	int r;

	x.deadline = now_ms() + (long long)m->timeout * 1000;
	if (read_versions(&x) < 0)
		return POPLAR_DISCONNECT;
	if (xread(&x, hdr, 4, "AP-REQ length") < 0) {
		log_io_fail(&x);
		return POPLAR_DISCONNECT;
	}
	if (!kpop_len_ok(hdr, KPOP_APREQ_MAX, &len)) {
		log_fail(&x, "AP-REQ length out of bounds", NULL);
		return POPLAR_DISCONNECT;
	}
	apreq.data = malloc(len);
	if (apreq.data == NULL) {
		log_fail(&x, "out of memory", NULL);
		return POPLAR_DISCONNECT;
	}
	apreq.length = len;
	if (xread(&x, apreq.data, len, "AP-REQ") < 0) {
		log_io_fail(&x);
		goto cleanup;
	}

	if ((ret = krb5_init_context(&ctx)) != 0) {
		ctx = NULL;
		log_fail(&x, "cannot initialise Kerberos", NULL);
		goto cleanup;
	}
	/* Our own auth context and replay cache: krb5_rd_req only makes a
	 * replay cache when it is given a server principal. */
	piece.data = m->service;
	piece.length = (unsigned int)strlen(m->service);
	if ((ret = krb5_auth_con_init(ctx, &ac)) != 0 ||
	    (ret = krb5_get_server_rcache(ctx, &piece, &rc)) != 0 ||
	    (ret = krb5_auth_con_setrcache(ctx, ac, rc)) != 0) {
		const char *e = krb5_get_error_message(ctx, ret);

		log_fail(&x, "replay cache unusable (see poplard "
			 "--check-kerberos)", e);
		krb5_free_error_message(ctx, e);
		send_krb_error(&x, ctx, NULL, ret);
		goto cleanup;
	}
	rc = NULL;      /* the auth context owns it now */
	if (strcmp(m->hostname, "*") != 0 &&
	    (ret = krb5_sname_to_principal(ctx, m->hostname, m->service,
					   KRB5_NT_SRV_HST, &server)) != 0) {
		log_fail(&x, "cannot build the service principal", NULL);
		goto cleanup;
	}
	ret = m->keytab != NULL ? krb5_kt_resolve(ctx, m->keytab, &kt)
				: krb5_kt_default(ctx, &kt);
	if (ret == 0)
		ret = krb5_rd_req(ctx, &ac, &apreq, server, kt, &ap_options,
				  &ticket);
	/* With host = *, any key of the keytab decrypts: the service
	 * must still be ours. */
	if (ret == 0 && (ticket->server->length != 2 ||
			 ticket->server->data[0].length != piece.length ||
			 memcmp(ticket->server->data[0].data, piece.data,
				piece.length) != 0))
		ret = KRB5KRB_AP_WRONG_PRINC;
	if (ret != 0) {
		const char *e = krb5_get_error_message(ctx, ret);

		log_fail(&x, rd_req_reason(ret), e);
		krb5_free_error_message(ctx, e);
		send_krb_error(&x, ctx, server, ret);
		goto cleanup;
	}
	if ((ap_options & AP_OPTS_MUTUAL_REQUIRED) == 0) {
		log_fail(&x, "client did not ask for mutual authentication",
			 NULL);
		send_krb_error(&x, ctx, server, KRB5KDC_ERR_BADOPTION);
		goto cleanup;
	}
	if (xwrite_msg(&x, NULL, 0) < 0 ||
	    (ret = krb5_mk_rep(ctx, ac, &aprep)) != 0 ||
	    xwrite_msg(&x, aprep.data, aprep.length) < 0) {
		log_fail(&x, "cannot send the AP-REP", NULL);
		goto cleanup;
	}

	if (krb5_unparse_name(ctx, ticket->enc_part2->client, &cname) != 0) {
		log_fail(&x, "cannot unparse the client principal", NULL);
		goto cleanup;
	}
	printable_copy(ks->principal, sizeof(ks->principal), cname);
	principal_realm(ticket->enc_part2->client, ks->realm,
			sizeof(ks->realm));
	printable_copy(ks->realm, sizeof(ks->realm), ks->realm);
	r = principal_map(ctx, m->policy, ticket->enc_part2->client, ks->user,
			  sizeof(ks->user), &rule, &why);
	if (r != 1) {
		char what[400];

		snprintf(what, sizeof(what), "principal %s: %s", ks->principal,
			 why ? why : "not mapped");
		log_fail(&x, r == 0 ? "no local user" : "mapping failed", what);
		send_now(m, s, r == 0 ? "-ERR [AUTH] your Kerberos principal "
			 "has no mailbox here" : "-ERR [SYS/TEMP] cannot map "
			 "your Kerberos principal now");
		goto cleanup;
	}
	snprintf(ks->rule, sizeof(ks->rule), "%s", rule);
	ks->authed = true;
	m->host->log(POPLAR_LOG_INFO, "kpop-auth peer=%s listener=%s "
		     "principal=%s user=%s rule=%s realm=%s",
		     m->host->peer_address(s), m->host->listener_name(s),
		     ks->principal, ks->user, ks->rule, ks->realm);
	memcpy(out->user, ks->user, sizeof(out->user));
	out->method = "kpop";
	result = POPLAR_LOGIN;

cleanup:
	if (ctx != NULL) {
		krb5_free_unparsed_name(ctx, cname);
		krb5_free_data_contents(ctx, &aprep);
		krb5_free_ticket(ctx, ticket);
		if (kt != NULL)
			krb5_kt_close(ctx, kt);
		krb5_free_principal(ctx, server);
		if (ac != NULL)
			krb5_auth_con_free(ctx, ac);
		krb5_free_context(ctx);
	}
	free(apreq.data);
	return result;
}

/* ---- POP3 commands after the exchange ----------------------------------- */

static int
kpop_session_start(void *mod, struct poplar_session *s, void **sess_r)
{
	(void)s;
	the_mod = mod;
	*sess_r = calloc(1, sizeof(struct kpop_sess));
	return *sess_r != NULL ? 0 : -1;
}

static void
kpop_session_end(void *mod, void *sess)
{
	(void)mod;
	free(sess);
}

static void
kpop_capa(void *mod, void *sess, struct poplar_session *s,
	  void (*emit)(struct poplar_session *s, const char *line))
{
	struct kpop_sess *ks = sess;

	(void)mod;
	if (ks->authed)
		emit(s, "USER");
}

static enum poplar_outcome
cmd_user(struct poplar_session *s, void *sess, unsigned int argc,
	 char **argv, struct poplar_outcome_info *out)
{
	struct kpop_sess *ks = sess;
	size_t len = strlen(argv[0]);

	(void)s;
	(void)argc;
	if (!ks->authed) {
		out->message = "Kerberos authentication has not happened";
		return POPLAR_ERR;
	}
	ks->have_user = true;
	ks->given_too_long = len > POPLAR_USER_MAX;
	snprintf(ks->given, sizeof(ks->given), "%s", argv[0]);
	out->message = "send PASS (its argument is ignored)";
	return POPLAR_OK;
}

static enum poplar_outcome
cmd_pass(struct poplar_session *s, void *sess, unsigned int argc,
	 char **argv, struct poplar_outcome_info *out)
{
	struct kpop_sess *ks = sess;

	(void)s;
	/* Not a secret, but some clients put the user's password here. */
	if (argc > 0)
		the_mod->host->wipe(argv[0], strlen(argv[0]));
	if (!ks->have_user) {
		out->message = "send USER first";
		return POPLAR_ERR;
	}
	ks->have_user = false;
	out->method = "kpop";
	memcpy(out->user, ks->given, sizeof(out->user));
	if (ks->given_too_long || strcmp(ks->given, ks->user) != 0) {
		snprintf(ks->reason, sizeof(ks->reason), "USER is not the "
			 "local user of principal %s (%s)", ks->principal,
			 ks->user);
		out->reason = ks->reason;
		return POPLAR_LOGIN_FAIL;
	}
	snprintf(out->detail, sizeof(out->detail),
		 "principal=%.120s realm=%.60s rule=%.40s", ks->principal, ks->realm,
		 ks->rule);
	return POPLAR_LOGIN;
}

static size_t
kpop_policy(void *mod, struct poplar_method_policy *out, size_t max)
{
	(void)mod;
	if (max < 1)
		return 0;
	out[0].name = "KPOP (Kerberos 5)";
	out[0].flags = POPLAR_POLICY_REPLAY_SAFE | POPLAR_POLICY_MUTUAL;
	return 1;
}

static const struct poplar_command kpop_commands[] = {
	{ "USER", 1, 1, 0, cmd_user },
	{ "PASS", 0, 1, POPLAR_CMD_REST, cmd_pass },
	{ NULL, 0, 0, 0, NULL }
};

const struct poplar_module poplar_module = {
	.abi_major = POPLAR_MODULE_ABI_MAJOR,
	.abi_minor = POPLAR_MODULE_ABI_MINOR,
	.name = "kpop",
	.version = "1.0",
	.description = "Kerberized POP (KPOP): krb5 sendauth before the "
		       "greeting",
	.init = kpop_init,
	.fini = kpop_fini,
	.session_start = kpop_session_start,
	.session_end = kpop_session_end,
	.connect = kpop_connect,
	.capa = kpop_capa,
	.commands = kpop_commands,
	.policy = kpop_policy,
	.check = kpop_check,
};
