/* pass.c: the pass module: USER/PASS (RFC 1939 section 7).
 *
 * The password is checked by the host's userdb (passwd-file or system);
 * the backend key leaves room for PAM and Kerberos passwords.  USER never
 * reveals whether a user exists; PASS answers every failure alike (the
 * core sends the same -ERR [AUTH] after the same delay). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "poplar-module.h"

enum backend { BACKEND_USERDB };

struct pass_mod {
	const struct poplar_host *host;
	enum backend backend;
};

struct pass_sess {
	bool have_user;
	char user[POPLAR_USER_MAX + 1];
	bool user_too_long;
};

static int
pass_init(const struct poplar_host *host,
	  const struct poplar_config_item *items, size_t nitems, void **mod_r,
	  const struct poplar_config_item **item_r, const char **error_r)
{
	struct pass_mod *m;

	for (size_t i = 0; i < nitems; i++) {
		if (strcmp(items[i].key, "backend") == 0) {
			if (strcmp(items[i].value, "userdb") == 0)
				continue;
			*item_r = &items[i];
			if (strcmp(items[i].value, "pam") == 0 ||
			    strcmp(items[i].value, "krb5") == 0)
				*error_r = "this backend is not available in "
					   "this version (use backend = userdb)";
			else
				*error_r = "unknown backend (known: userdb)";
			return -1;
		}
		*item_r = &items[i];
		*error_r = "unknown key (known: backend)";
		return -1;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	m->host = host;
	m->backend = BACKEND_USERDB;
	*mod_r = m;
	return 0;
}

static void
pass_fini(void *mod)
{
	free(mod);
}

static int
pass_session_start(void *mod, struct poplar_session *s, void **sess_r)
{
	(void)mod;
	(void)s;
	*sess_r = calloc(1, sizeof(struct pass_sess));
	return *sess_r != NULL ? 0 : -1;
}

static void
pass_session_end(void *mod, void *sess)
{
	(void)mod;
	free(sess);
}

static void
pass_capa(void *mod, void *sess, struct poplar_session *s,
	  void (*emit)(struct poplar_session *s, const char *line))
{
	struct pass_mod *m = mod;

	(void)sess;
	if (m->host->plaintext_allowed(s))
		emit(s, "USER");
}

/* The module state is per process; the session pointer is enough. */
static struct pass_mod *the_mod;

static enum poplar_outcome
cmd_user(struct poplar_session *s, void *sess, unsigned int argc,
	 char **argv, struct poplar_outcome_info *out)
{
	struct pass_sess *ps = sess;
	size_t len = strlen(argv[0]);

	(void)s;
	(void)argc;
	ps->have_user = true;
	ps->user_too_long = len > POPLAR_USER_MAX;
	memcpy(ps->user, argv[0], ps->user_too_long ? POPLAR_USER_MAX : len);
	ps->user[ps->user_too_long ? POPLAR_USER_MAX : len] = '\0';
	out->message = "send PASS";
	return POPLAR_OK;
}

static enum poplar_outcome
cmd_pass(struct poplar_session *s, void *sess, unsigned int argc,
	 char **argv, struct poplar_outcome_info *out)
{
	struct pass_sess *ps = sess;
	const struct poplar_host *host = the_mod->host;
	const char *reason = NULL;
	enum poplar_verify v;

	(void)s;
	(void)argc;
	if (!ps->have_user) {
		out->message = "send USER first";
		return POPLAR_ERR;
	}
	ps->have_user = false;
	memcpy(out->user, ps->user, sizeof(out->user));
	out->method = "pass";
	if (ps->user_too_long) {
		/* Hash anyway: the answer must not come faster. */
		(void)host->verify_password("", argv[0], &reason);
		host->wipe(argv[0], strlen(argv[0]));
		out->reason = "user name too long";
		return POPLAR_LOGIN_FAIL;
	}
	v = host->verify_password(ps->user, argv[0], &reason);
	host->wipe(argv[0], strlen(argv[0]));
	switch (v) {
	case POPLAR_VERIFY_OK:
		return POPLAR_LOGIN;
	case POPLAR_VERIFY_TEMP:
		out->reason = reason ? reason : "password backend unavailable";
		return POPLAR_TEMPFAIL;
	case POPLAR_VERIFY_FAIL:
		break;
	}
	out->reason = reason ? reason : "wrong password";
	return POPLAR_LOGIN_FAIL;
}

static int
pass_session_start_hook(void *mod, struct poplar_session *s, void **sess_r)
{
	the_mod = mod;
	return pass_session_start(mod, s, sess_r);
}

static size_t
pass_policy(void *mod, struct poplar_method_policy *out, size_t max)
{
	(void)mod;
	if (max < 1)
		return 0;
	out[0].name = "USER/PASS";
	out[0].flags = POPLAR_POLICY_PLAINTEXT;
	return 1;
}

static const struct poplar_command pass_commands[] = {
	{ "USER", 1, 1, POPLAR_CMD_PLAINTEXT, cmd_user },
	{ "PASS", 1, 1, POPLAR_CMD_PLAINTEXT | POPLAR_CMD_REST, cmd_pass },
	{ NULL, 0, 0, 0, NULL }
};

const struct poplar_module poplar_module = {
	.abi_major = POPLAR_MODULE_ABI_MAJOR,
	.abi_minor = POPLAR_MODULE_ABI_MINOR,
	.name = "pass",
	.version = "1.0",
	.description = "USER/PASS against the userdb (RFC 1939)",
	.init = pass_init,
	.fini = pass_fini,
	.session_start = pass_session_start_hook,
	.session_end = pass_session_end,
	.capa = pass_capa,
	.commands = pass_commands,
	.policy = pass_policy,
};
