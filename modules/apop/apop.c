/* apop.c: the apop module: APOP name digest (RFC 1939 section 7).
 *
 * The greeting carries a fresh random timestamp; the digest is MD5 of
 * timestamp and shared secret, compared in constant time.  Secrets are
 * read from [module apop] secrets = FILE at each attempt (so only one is
 * ever in memory, and only briefly) and wiped after use.  Whether a user
 * has a secret is never revealed: every failure is the core's one
 * -ERR [AUTH] after the same delay.  Optionally (deny_pass = yes) users
 * with a secret may not log in with USER/PASS. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "apop_core.h"
#include "poplar-module.h"

struct apop_mod {
	const struct poplar_host *host;
	char *secrets;
	bool deny_pass;
};

struct apop_sess {
	char timestamp[APOP_TIMESTAMP_MAX];
};

static struct apop_mod *the_mod;

static int
apop_init(const struct poplar_host *host,
	  const struct poplar_config_item *items, size_t nitems, void **mod_r,
	  const struct poplar_config_item **item_r, const char **error_r)
{
	struct apop_mod *m = calloc(1, sizeof(*m));
	const struct poplar_config_item *secrets_item = NULL;

	if (m == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	m->host = host;
	for (size_t i = 0; i < nitems; i++) {
		*item_r = &items[i];
		if (strcmp(items[i].key, "secrets") == 0) {
			free(m->secrets);
			m->secrets = strdup(items[i].value);
			secrets_item = &items[i];
		} else if (strcmp(items[i].key, "deny_pass") == 0) {
			if (strcmp(items[i].value, "yes") == 0)
				m->deny_pass = true;
			else if (strcmp(items[i].value, "no") == 0)
				m->deny_pass = false;
			else {
				*error_r = "deny_pass must be yes or no";
				goto fail;
			}
		} else {
			*error_r = "unknown key (known: secrets, deny_pass)";
			goto fail;
		}
	}
	if (m->secrets == NULL) {
		*item_r = NULL;
		*error_r = "[module apop] needs secrets = FILE";
		goto fail;
	}
	if (apop_check_file(m->secrets, geteuid(), error_r) < 0) {
		static char msg[512];

		snprintf(msg, sizeof(msg), "secrets file %s: %s", m->secrets,
			 *error_r);
		*error_r = msg;
		*item_r = secrets_item;
		goto fail;
	}
	*mod_r = m;
	return 0;
fail:
	free(m->secrets);
	free(m);
	return -1;
}

static void
apop_fini(void *mod)
{
	struct apop_mod *m = mod;

	if (m == NULL)
		return;
	free(m->secrets);
	free(m);
}

static int
apop_session_start(void *mod, struct poplar_session *s, void **sess_r)
{
	(void)s;
	the_mod = mod;
	*sess_r = calloc(1, sizeof(struct apop_sess));
	return *sess_r != NULL ? 0 : -1;
}

static void
apop_session_end(void *mod, void *sess)
{
	(void)mod;
	free(sess);
}

static size_t
apop_greeting(void *mod, void *sess, struct poplar_session *s, char *buf,
	      size_t size)
{
	struct apop_mod *m = mod;
	struct apop_sess *as = sess;
	size_t len;

	(void)s;
	if (as->timestamp[0] == '\0' &&
	    apop_timestamp(as->timestamp, sizeof(as->timestamp),
			   m->host->hostname(), getpid()) < 0) {
		m->host->log(POPLAR_LOG_ERROR, "apop: no randomness for the "
			     "timestamp; APOP disabled for this session");
		as->timestamp[0] = '\0';
		return 0;
	}
	len = strlen(as->timestamp);
	if (len >= size)
		return 0;
	memcpy(buf, as->timestamp, len + 1);
	return len;
}

static enum poplar_outcome
cmd_apop(struct poplar_session *s, void *sess, unsigned int argc,
	 char **argv, struct poplar_outcome_info *out)
{
	const struct poplar_host *host = the_mod->host;
	/* The greeting's token, which outlives STLS (the module's own
	 * session state does not). */
	const char *timestamp = host->greeting_token(s);
	char secret[APOP_SECRET_MAX + 1];
	const char *error = NULL;
	size_t slen = 0;
	int r;

	(void)sess;
	(void)argc;
	out->method = "apop";
	strncpy(out->user, argv[0], POPLAR_USER_MAX);
	out->user[POPLAR_USER_MAX] = '\0';
	if (timestamp == NULL || timestamp[0] != '<') {
		out->message = "APOP is not available in this session";
		return POPLAR_ERR;
	}
	if (strlen(argv[0]) > POPLAR_USER_MAX)
		r = 0;
	else
		r = apop_lookup(the_mod->secrets, geteuid(), argv[0], secret,
				sizeof(secret), &slen, &error);
	if (r < 0) {
		host->log(POPLAR_LOG_ERROR, "apop: secrets file %s: %s",
			  the_mod->secrets, error);
		host->wipe(secret, sizeof(secret));
		out->reason = "secrets file unusable";
		return POPLAR_TEMPFAIL;
	}
	if (r == 0) {
		/* Same work as for a user with a secret. */
		(void)apop_verify(timestamp, "-", 1, argv[1]);
		out->reason = "unknown user or no APOP secret";
		return POPLAR_LOGIN_FAIL;
	}
	r = apop_verify(timestamp, secret, slen, argv[1]);
	host->wipe(secret, sizeof(secret));
	if (!r) {
		out->reason = strlen(argv[1]) == 32 ? "wrong digest"
						    : "malformed digest";
		return POPLAR_LOGIN_FAIL;
	}
	return POPLAR_LOGIN;
}

static int
apop_login_veto(void *mod, const char *user, const char *method,
		const char **reason_r)
{
	struct apop_mod *m = mod;
	char secret[APOP_SECRET_MAX + 1];
	const char *error;
	size_t slen;
	int r;

	if (!m->deny_pass || strcmp(method, "pass") != 0)
		return 0;
	r = apop_lookup(m->secrets, geteuid(), user, secret, sizeof(secret),
			&slen, &error);
	m->host->wipe(secret, sizeof(secret));
	if (r == 0)
		return 0;
	*reason_r = r > 0 ? "user has an APOP secret: USER/PASS refused "
			    "(deny_pass = yes)"
			  : "secrets file unusable";
	return 1;
}

static size_t
apop_policy(void *mod, struct poplar_method_policy *out, size_t max)
{
	(void)mod;
	if (max < 1)
		return 0;
	out[0].name = "APOP";
	out[0].flags = POPLAR_POLICY_REPLAY_SAFE | POPLAR_POLICY_GUESSABLE;
	return 1;
}

static const struct poplar_command apop_commands[] = {
	{ "APOP", 2, 2, 0, cmd_apop },
	{ NULL, 0, 0, 0, NULL }
};

const struct poplar_module poplar_module = {
	.abi_major = POPLAR_MODULE_ABI_MAJOR,
	.abi_minor = POPLAR_MODULE_ABI_MINOR,
	.name = "apop",
	.version = "1.0",
	.description = "APOP name digest (RFC 1939), MD5: weak without TLS",
	.init = apop_init,
	.fini = apop_fini,
	.session_start = apop_session_start,
	.session_end = apop_session_end,
	.greeting = apop_greeting,
	.commands = apop_commands,
	.policy = apop_policy,
	.login_veto = apop_login_veto,
};
