/* pass_krb5.c: the pass module's krb5 backend: USER/PASS checked against
 * the KDC (krb5_get_init_creds_password), the ticket then verified with
 * the service keytab (krb5_verify_init_creds) so that a spoofed KDC
 * cannot log anyone in, and the principal mapped to a local user by the
 * shared principal policy (auth/principal.h).
 *
 * Runs as root when poplard does (the keytab read), before the core drops
 * privileges. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <krb5.h>
#include "krb5check.h"
#include "pass_backend.h"
#include "principal.h"

struct pass_krb5 {
	char *keytab;           /* NULL: the default keytab */
	char *service;
	char *hostname;         /* "*": any key of the keytab */
	struct principal_policy *policy;
	char reason[512];
};

static void *
krb5_create(void)
{
	struct pass_krb5 *k = calloc(1, sizeof(*k));

	if (k != NULL && (k->policy = principal_policy_new()) == NULL) {
		free(k);
		return NULL;
	}
	return k;
}

static void
krb5_destroy(void *b)
{
	struct pass_krb5 *k = b;

	if (k == NULL)
		return;
	principal_policy_free(&k->policy);
	free(k->keytab);
	free(k->service);
	free(k->hostname);
	free(k);
}

static int
set_string(char **dst, const char *value, const char **error_r)
{
	free(*dst);
	*dst = strdup(value);
	if (*dst == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	return 1;
}

static int
krb5_set(void *b, const char *key, const char *value, const char **error_r)
{
	struct pass_krb5 *k = b;
	int r = principal_policy_set(k->policy, key, value, error_r);

	if (r != 0)
		return r;
	if (strcmp(key, "keytab") == 0) {
		if (*value == '\0') {
			*error_r = "keytab needs a value";
			return -1;
		}
		return set_string(&k->keytab, value, error_r);
	}
	if (strcmp(key, "service") == 0 || strcmp(key, "host") == 0) {
		if (*value == '\0' || strpbrk(value, "/@ \t") != NULL) {
			*error_r = "service and host must be one name without "
				   "'/', '@' or blanks";
			return -1;
		}
		return set_string(key[0] == 's' ? &k->service : &k->hostname,
				  value, error_r);
	}
	return 0;
}

static int
krb5_finish(void *b, const struct poplar_host *host, const char **error_r)
{
	struct pass_krb5 *k = b;
	krb5_context ctx;
	int rc;

	if ((k->service == NULL &&
	     set_string(&k->service, "pop", error_r) < 0) ||
	    (k->hostname == NULL &&
	     set_string(&k->hostname, host->hostname(), error_r) < 0))
		return -1;
	if (krb5_init_context(&ctx) != 0) {
		*error_r = "cannot initialise Kerberos (check krb5.conf or "
			   "KRB5_CONFIG)";
		return -1;
	}
	rc = principal_policy_finish(k->policy, ctx, error_r);
	krb5_free_context(ctx);
	return rc;
}

static int
krb5_check(void *b, FILE *out, int verbose)
{
	struct pass_krb5 *k = b;
	struct krb5_setup st = {
		.keytab = k->keytab, .service = k->service,
		.host = k->hostname, .need_rcache = false,
	};
	krb5_context ctx;
	int rc;

	if (krb5_init_context(&ctx) != 0) {
		fprintf(out, "  problem: pass: cannot initialise Kerberos\n");
		return -1;
	}
	if (verbose)
		fprintf(out, "  backend krb5: passwords checked with the KDC, "
			"tickets verified with the keytab\n");
	rc = krb5_setup_check(ctx, &st, k->policy, out, verbose);
	krb5_free_context(ctx);
	return rc;
}

/* The answer of the KDC to a password: wrong or unknown (FAIL), or the
 * KDC could not be asked (TEMP). */
static enum poplar_verify
classify_init_creds(krb5_error_code ret)
{
	switch (ret) {
	case KRB5KDC_ERR_PREAUTH_FAILED:
	case KRB5KRB_AP_ERR_BAD_INTEGRITY:
	case KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
	case KRB5KDC_ERR_CLIENT_REVOKED:
	case KRB5KDC_ERR_KEY_EXP:
	case KRB5KDC_ERR_NAME_EXP:
	case KRB5KDC_ERR_POLICY:
	case KRB5_PREAUTH_FAILED:
	case KRB5_LIBOS_PWDINTR:
	case KRB5_LIBOS_CANTREADPWD:
		return POPLAR_VERIFY_FAIL;
	default:
		return POPLAR_VERIFY_TEMP;
	}
}

static const char *
set_reason(struct pass_krb5 *k, krb5_context ctx, const char *what,
	   krb5_error_code ret)
{
	const char *e = krb5_get_error_message(ctx, ret);

	snprintf(k->reason, sizeof(k->reason), "%s: %s", what, e);
	krb5_free_error_message(ctx, e);
	return k->reason;
}

static enum poplar_verify
krb5_verify(void *b, const char *name, const char *password,
	    const char *rhost, char *user, char *detail, const char **reason_r)
{
	struct pass_krb5 *k = b;
	krb5_context ctx = NULL;
	krb5_principal client = NULL, server = NULL;
	krb5_get_init_creds_opt *opt = NULL;
	krb5_verify_init_creds_opt vopt;
	krb5_keytab kt = NULL;
	krb5_creds creds;
	bool have_creds = false;
	char *cname = NULL, realm[128];
	const char *rule = NULL, *why = NULL;
	enum poplar_verify v = POPLAR_VERIFY_TEMP;
	krb5_error_code ret;
	int r;

	(void)rhost;

	user[0] = '\0';
	*reason_r = "Kerberos unavailable";
	memset(&creds, 0, sizeof(creds));
	if (strlen(name) > PASS_NAME_MAX) {
		*reason_r = "user name too long";
		return POPLAR_VERIFY_FAIL;
	}
	if (krb5_init_context(&ctx) != 0)
		return POPLAR_VERIFY_TEMP;
	if ((ret = krb5_parse_name(ctx, name, &client)) != 0) {
		*reason_r = set_reason(k, ctx, "bad principal name", ret);
		v = POPLAR_VERIFY_FAIL;
		goto out;
	}
	/* Ask no KDC about realms we do not serve. */
	if (!principal_realm_allowed(k->policy, client)) {
		*reason_r = "realm not allowed";
		v = POPLAR_VERIFY_FAIL;
		goto out;
	}
	if ((ret = krb5_get_init_creds_opt_alloc(ctx, &opt)) != 0)
		goto out;
	krb5_get_init_creds_opt_set_forwardable(opt, 0);
	krb5_get_init_creds_opt_set_proxiable(opt, 0);
	krb5_get_init_creds_opt_set_tkt_life(opt, 5 * 60);
	ret = krb5_get_init_creds_password(ctx, &creds, client, password,
					   NULL, NULL, 0, NULL, opt);
	if (ret != 0) {
		v = classify_init_creds(ret);
		*reason_r = set_reason(k, ctx, v == POPLAR_VERIFY_FAIL
				       ? "KDC refused" : "KDC unavailable",
				       ret);
		goto out;
	}
	have_creds = true;

	/* The TGT must lead to a ticket for our own key: only the real KDC
	 * knows it. */
	if (strcmp(k->hostname, "*") != 0 &&
	    (ret = krb5_sname_to_principal(ctx, k->hostname, k->service,
					   KRB5_NT_SRV_HST, &server)) != 0) {
		*reason_r = set_reason(k, ctx, "service principal", ret);
		goto out;
	}
	ret = k->keytab != NULL ? krb5_kt_resolve(ctx, k->keytab, &kt)
				: krb5_kt_default(ctx, &kt);
	if (ret != 0) {
		*reason_r = set_reason(k, ctx, "keytab", ret);
		goto out;
	}
	krb5_verify_init_creds_opt_init(&vopt);
	krb5_verify_init_creds_opt_set_ap_req_nofail(&vopt, 1);
	ret = krb5_verify_init_creds(ctx, &creds, server, kt, NULL, &vopt);
	if (ret != 0) {
		bool spoof = ret == KRB5KRB_AP_ERR_BAD_INTEGRITY ||
			     ret == KRB5KRB_AP_ERR_MODIFIED;

		v = spoof ? POPLAR_VERIFY_FAIL : POPLAR_VERIFY_TEMP;
		*reason_r = set_reason(k, ctx, spoof
				       ? "ticket failed verification against "
					 "the keytab (spoofed KDC?)"
				       : "cannot verify the ticket against the "
					 "keytab (see poplard --check-kerberos)",
				       ret);
		goto out;
	}

	r = principal_map(ctx, k->policy, client, user, POPLAR_USER_MAX + 1,
			  &rule, &why);
	if (r != 1) {
		v = r == 0 ? POPLAR_VERIFY_FAIL : POPLAR_VERIFY_TEMP;
		snprintf(k->reason, sizeof(k->reason), "principal not mapped: "
			 "%s", why ? why : "no rule");
		*reason_r = k->reason;
		goto out;
	}
	if (krb5_unparse_name(ctx, client, &cname) != 0) {
		user[0] = '\0';
		goto out;
	}
	principal_realm(client, realm, sizeof(realm));
	snprintf(detail, POPLAR_DETAIL_MAX, "principal=%.120s realm=%.60s "
		 "rule=%.40s", cname, realm, rule);
	/* No spaces or quotes in the log's key=value text. */
	for (char *p = detail; *p != '\0'; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '?';
	v = POPLAR_VERIFY_OK;
	*reason_r = NULL;
out:
	if (v != POPLAR_VERIFY_OK)
		user[0] = '\0';
	krb5_free_unparsed_name(ctx, cname);
	if (have_creds)
		krb5_free_cred_contents(ctx, &creds);
	if (kt != NULL)
		krb5_kt_close(ctx, kt);
	krb5_get_init_creds_opt_free(ctx, opt);
	krb5_free_principal(ctx, server);
	krb5_free_principal(ctx, client);
	krb5_free_context(ctx);
	return v;
}

const struct pass_backend poplar_pass_backend = {
	.abi = PASS_BACKEND_ABI,
	.name = "krb5",
	.keys = ", keytab, service, host, realms, principal_map, kuserok",
	/* Principals with instance and realm are longer than user names. */
	.name_max = PASS_NAME_MAX,
	.create = krb5_create,
	.set = krb5_set,
	.finish = krb5_finish,
	.destroy = krb5_destroy,
	.check = krb5_check,
	.verify = krb5_verify,
};
