/* pass.c: the pass module: USER/PASS (RFC 1939 section 7).
 *
 * The password is checked by one backend: the host's userdb (passwd-file
 * or system), the KDC (backend = krb5, pass_krb5.c) or PAM (backend =
 * pam, pass_pam.c).  USER never reveals whether a user exists; PASS
 * answers every failure alike (the core sends the same -ERR [AUTH] after
 * the same delay), and a backend outage as -ERR [SYS/TEMP]. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "poplar-module.h"
#include "pass_backend.h"

enum backend { BACKEND_USERDB, BACKEND_KRB5, BACKEND_PAM };

struct pass_mod {
	const struct poplar_host *host;
	enum backend backend;
	struct pass_krb5 *krb5;
	struct pass_pam *pam;
};

struct pass_sess {
	bool have_user;
	/* USER's argument: a local name, or a principal for krb5 */
	char user[PASS_NAME_MAX + 1];
	bool user_too_long;
};

#ifdef PASS_BACKEND_KRB5
#define KRB5_KEYS ", keytab, service, host, realms, principal_map, kuserok"
#else
#define KRB5_KEYS ""
#endif
#ifdef PASS_BACKEND_PAM
#define PAM_KEYS ", pam_service"
#else
#define PAM_KEYS ""
#endif

static void
pass_fini(void *mod)
{
	struct pass_mod *m = mod;

	if (m == NULL)
		return;
#ifdef PASS_BACKEND_KRB5
	pass_krb5_free(&m->krb5);
#endif
#ifdef PASS_BACKEND_PAM
	pass_pam_free(&m->pam);
#endif
	free(m);
}

/* Offer a key to the configured backend: 1 taken, 0 unknown, -1 bad. */
static int
backend_set(struct pass_mod *m, const char *key, const char *value,
	    const char **error_r)
{
	switch (m->backend) {
	case BACKEND_KRB5:
#ifdef PASS_BACKEND_KRB5
		return pass_krb5_set(m->krb5, key, value, error_r);
#else
		break;
#endif
	case BACKEND_PAM:
#ifdef PASS_BACKEND_PAM
		return pass_pam_set(m->pam, key, value, error_r);
#else
		break;
#endif
	case BACKEND_USERDB:
		break;
	}
	return 0;
}

static int
pass_init(const struct poplar_host *host,
	  const struct poplar_config_item *items, size_t nitems, void **mod_r,
	  const struct poplar_config_item **item_r, const char **error_r)
{
	struct pass_mod *m = calloc(1, sizeof(*m));

	if (m == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	m->host = host;
	m->backend = BACKEND_USERDB;
	/* The backend first: the other keys belong to it. */
	for (size_t i = 0; i < nitems; i++) {
		const char *v = items[i].value;

		if (strcmp(items[i].key, "backend") != 0)
			continue;
		*item_r = &items[i];
		if (strcmp(v, "userdb") == 0)
			m->backend = BACKEND_USERDB;
		else if (strcmp(v, "krb5") == 0) {
#ifdef PASS_BACKEND_KRB5
			m->backend = BACKEND_KRB5;
			m->krb5 = pass_krb5_new();
			if (m->krb5 == NULL) {
				*error_r = "out of memory";
				goto fail;
			}
#else
			*error_r = "this poplar was built without Kerberos "
				   "(configure --with-krb5)";
			goto fail;
#endif
		} else if (strcmp(v, "pam") == 0) {
#ifdef PASS_BACKEND_PAM
			m->backend = BACKEND_PAM;
			m->pam = pass_pam_new();
			if (m->pam == NULL) {
				*error_r = "out of memory";
				goto fail;
			}
#else
			*error_r = "this poplar was built without PAM "
				   "(configure --with-pam)";
			goto fail;
#endif
		} else {
			*error_r = "unknown backend (known: userdb, krb5, pam)";
			goto fail;
		}
	}
	for (size_t i = 0; i < nitems; i++) {
		int r;

		if (strcmp(items[i].key, "backend") == 0)
			continue;
		*item_r = &items[i];
		r = backend_set(m, items[i].key, items[i].value, error_r);
		if (r < 0)
			goto fail;
		if (r == 0) {
			*error_r = m->backend == BACKEND_KRB5
				   ? "unknown key (known: backend" KRB5_KEYS ")"
				   : m->backend == BACKEND_PAM
				   ? "unknown key (known: backend" PAM_KEYS ")"
				   : "unknown key (known: backend)";
			goto fail;
		}
	}
	*item_r = NULL;
#ifdef PASS_BACKEND_KRB5
	if (m->backend == BACKEND_KRB5 &&
	    pass_krb5_finish(m->krb5, host, error_r) < 0)
		goto fail;
#endif
	*mod_r = m;
	return 0;
fail:
	pass_fini(m);
	return -1;
}

static int
pass_check(void *mod, FILE *out, int verbose)
{
#ifdef PASS_BACKEND_KRB5
	struct pass_mod *m = mod;

	if (m->backend == BACKEND_KRB5)
		return pass_krb5_check(m->krb5, out, verbose);
#else
	(void)mod;
#endif
	(void)out;
	(void)verbose;
	return 0;
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
	/* Only Kerberos takes principal names longer than a user name. */
	size_t max = the_mod->backend == BACKEND_KRB5 ? PASS_NAME_MAX
						      : POPLAR_USER_MAX;

	(void)s;
	(void)argc;
	ps->have_user = true;
	ps->user_too_long = len > max;
	memcpy(ps->user, argv[0], ps->user_too_long ? max : len);
	ps->user[ps->user_too_long ? max : len] = '\0';
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

	(void)argc;
	if (!ps->have_user) {
		out->message = "send USER first";
		return POPLAR_ERR;
	}
	ps->have_user = false;
	snprintf(out->user, sizeof(out->user), "%.*s", POPLAR_USER_MAX,
		 ps->user);
	out->method = "pass";
	if (ps->user_too_long) {
		/* Hash anyway: the answer must not come faster. */
		(void)host->verify_password("", argv[0], &reason);
		host->wipe(argv[0], strlen(argv[0]));
		out->reason = "user name too long";
		return POPLAR_LOGIN_FAIL;
	}
	switch (the_mod->backend) {
#ifdef PASS_BACKEND_KRB5
	case BACKEND_KRB5:
		v = pass_krb5_verify(the_mod->krb5, ps->user, argv[0],
				     out->user, out->detail, &reason);
		if (v != POPLAR_VERIFY_OK)
			snprintf(out->user, sizeof(out->user), "%.*s",
				 POPLAR_USER_MAX, ps->user);
		break;
#endif
#ifdef PASS_BACKEND_PAM
	case BACKEND_PAM:
		v = pass_pam_verify(the_mod->pam, ps->user, argv[0],
				    host->peer_address(s), out->user, &reason);
		if (v != POPLAR_VERIFY_OK)
			snprintf(out->user, sizeof(out->user), "%.*s",
				 POPLAR_USER_MAX, ps->user);
		else
			snprintf(out->detail, sizeof(out->detail),
				 "backend=pam");
		break;
#endif
	default:
		v = host->verify_password(ps->user, argv[0], &reason);
		break;
	}
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
	.description = "USER/PASS against the userdb, the KDC or PAM "
		       "(RFC 1939)",
	.init = pass_init,
	.fini = pass_fini,
	.session_start = pass_session_start_hook,
	.session_end = pass_session_end,
	.capa = pass_capa,
	.commands = pass_commands,
	.policy = pass_policy,
	.check = pass_check,
};
