/* pass.c: the pass module: USER/PASS (RFC 1939 section 7).
 *
 * The password is checked by one backend: the host's userdb (passwd-file
 * or system), the KDC (backend = krb5, pass_krb5.c) or PAM (backend =
 * pam, pass_pam.c); the last two are shared objects of their own,
 * loaded only when configured (pass_backend.h).  USER never reveals whether a user exists; PASS
 * answers every failure alike (the core sends the same -ERR [AUTH] after
 * the same delay), and a backend outage as -ERR [SYS/TEMP]. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* dladdr */
#endif
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dlflags.h"
#include "poplar-module.h"
#include "pass_backend.h"
#include "trust.h"

struct pass_mod {
	const struct poplar_host *host;
	/* NULL: the host's userdb; else the loaded backend */
	const struct pass_backend *be;
	void *be_state;
	void *be_handle;
};

extern const struct poplar_module poplar_module;

/* Text of the last init error (init runs once, in the master). */
/* Room for a trust_check_file message, which names two paths. */
static char init_error[2 * 4096 + 256];

struct pass_sess {
	bool have_user;
	/* USER's argument: a local name, or a principal for krb5 */
	char user[PASS_NAME_MAX + 1];
	bool user_too_long;
};

static void
pass_fini(void *mod)
{
	struct pass_mod *m = mod;

	if (m == NULL)
		return;
	if (m->be != NULL && m->be_state != NULL)
		m->be->destroy(m->be_state);
	if (m->be_handle != NULL)
		dlclose(m->be_handle);
	free(m);
}

/* Load pass-NAME.so from the directory pass.so was loaded from. */
static int
backend_load(struct pass_mod *m, const char *name, const char **error_r)
{
	Dl_info info;
	const char *slash;
	const struct pass_backend *be;
	char path[4096];
	int n;

	if (strcmp(name, "krb5") != 0 && strcmp(name, "pam") != 0) {
		*error_r = "unknown backend (known: userdb, krb5, pam)";
		return -1;
	}
	if (dladdr((const void *)&poplar_module, &info) == 0 ||
	    info.dli_fname == NULL ||
	    (slash = strrchr(info.dli_fname, '/')) == NULL) {
		*error_r = "cannot find the directory of pass.so";
		return -1;
	}
	n = snprintf(path, sizeof(path), "%.*s/pass-%s.so",
		     (int)(slash - info.dli_fname), info.dli_fname, name);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		*error_r = "module directory path too long";
		return -1;
	}
	if (trust_check_file(path, init_error, sizeof(init_error)) < 0) {
		*error_r = init_error;
		return -1;
	}
	m->be_handle = dlopen(path, POPLAR_DLOPEN_FLAGS);
	if (m->be_handle == NULL) {
		snprintf(init_error, sizeof(init_error), "backend %s is not "
			 "available (not built or not installed): %s", name,
			 dlerror());
		*error_r = init_error;
		return -1;
	}
	be = dlsym(m->be_handle, PASS_BACKEND_SYMBOL);
	if (be == NULL || be->abi != PASS_BACKEND_ABI ||
	    strcmp(be->name, name) != 0) {
		snprintf(init_error, sizeof(init_error), "%s: not a pass backend "
			 "of this version", path);
		*error_r = init_error;
		return -1;
	}
	m->be = be;
	m->be_state = be->create();
	if (m->be_state == NULL) {
		*error_r = "out of memory";
		return -1;
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
	/* The backend first: the other keys belong to it. */
	for (size_t i = 0; i < nitems; i++) {
		const char *v = items[i].value;

		if (strcmp(items[i].key, "backend") != 0)
			continue;
		*item_r = &items[i];
		if (m->be != NULL) {
			*error_r = "backend given twice";
			goto fail;
		}
		if (strcmp(v, "userdb") != 0 &&
		    backend_load(m, v, error_r) < 0)
			goto fail;
	}
	for (size_t i = 0; i < nitems; i++) {
		int r;

		if (strcmp(items[i].key, "backend") == 0)
			continue;
		*item_r = &items[i];
		r = m->be != NULL ? m->be->set(m->be_state, items[i].key,
					       items[i].value, error_r) : 0;
		if (r < 0)
			goto fail;
		if (r == 0) {
			snprintf(init_error, sizeof(init_error),
				 "unknown key (known: backend%s)",
				 m->be != NULL ? m->be->keys : "");
			*error_r = init_error;
			goto fail;
		}
	}
	*item_r = NULL;
	if (m->be != NULL && m->be->finish != NULL &&
	    m->be->finish(m->be_state, host, error_r) < 0)
		goto fail;
	*mod_r = m;
	return 0;
fail:
	pass_fini(m);
	return -1;
}

static int
pass_check(void *mod, FILE *out, int verbose)
{
	struct pass_mod *m = mod;

	if (m->be != NULL && m->be->check != NULL)
		return m->be->check(m->be_state, out, verbose);
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
	size_t max = the_mod->be != NULL ? the_mod->be->name_max
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
	if (the_mod->be != NULL) {
		v = the_mod->be->verify(the_mod->be_state, ps->user, argv[0],
					host->peer_address(s), out->user,
					out->detail, &reason);
		if (v != POPLAR_VERIFY_OK)
			snprintf(out->user, sizeof(out->user), "%.*s",
				 POPLAR_USER_MAX, ps->user);
	} else {
		v = host->verify_password(ps->user, argv[0], &reason);
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
