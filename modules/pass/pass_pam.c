/* pass_pam.c: the pass module's PAM backend: pam_authenticate with a
 * conversation that answers only the password prompt, then
 * pam_acct_mgmt (expired or locked accounts are refused).
 *
 * Runs as root when poplard does (pam_unix reads /etc/shadow), before the
 * core drops privileges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <security/pam_appl.h>
#include "pass_backend.h"

#define PAM_SERVICE_DEFAULT "poplar"

struct pass_pam {
	char *service;
	char reason[256];
};

struct conv_data {
	const char *password;
	int answered;           /* the password went out once */
};

static void *
pam_create(void)
{
	struct pass_pam *p = calloc(1, sizeof(*p));

	if (p != NULL && (p->service = strdup(PAM_SERVICE_DEFAULT)) == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

static void
pam_destroy(void *b)
{
	struct pass_pam *p = b;

	if (p == NULL)
		return;
	free(p->service);
	free(p);
}

static int
pam_set(void *b, const char *key, const char *value, const char **error_r)
{
	struct pass_pam *p = b;
	if (strcmp(key, "pam_service") != 0)
		return 0;
	if (*value == '\0' || strpbrk(value, "/ \t") != NULL) {
		*error_r = "pam_service must be a file name in /etc/pam.d";
		return -1;
	}
	free(p->service);
	p->service = strdup(value);
	if (p->service == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	return 1;
}

static void
free_responses(struct pam_response *r, int n)
{
	for (int i = 0; i < n; i++) {
		if (r[i].resp != NULL) {
			memset(r[i].resp, 0, strlen(r[i].resp));
			free(r[i].resp);
		}
	}
	free(r);
}

/* Answer the one password prompt (echo off); informational messages get
 * no answer; anything else (a second password prompt, as for a password
 * change, or an echoed prompt) ends the conversation. */
static int
conversation(int n, const struct pam_message **msg,
	     struct pam_response **resp_r, void *appdata)
{
	struct conv_data *cd = appdata;
	struct pam_response *r;

	*resp_r = NULL;
	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	r = calloc((size_t)n, sizeof(*r));
	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			if (cd->answered) {
				free_responses(r, n);
				return PAM_CONV_ERR;
			}
			r[i].resp = strdup(cd->password);
			if (r[i].resp == NULL) {
				free_responses(r, n);
				return PAM_BUF_ERR;
			}
			cd->answered = 1;
			break;
		case PAM_ERROR_MSG:
		case PAM_TEXT_INFO:
			break;
		default:
			free_responses(r, n);
			return PAM_CONV_ERR;
		}
	}
	*resp_r = r;
	return PAM_SUCCESS;
}

/* FAIL for answers about the user or the password, TEMP for the rest. */
static enum poplar_verify
classify(int r)
{
	switch (r) {
	case PAM_AUTH_ERR:
	case PAM_USER_UNKNOWN:
	case PAM_MAXTRIES:
	case PAM_CRED_INSUFFICIENT:
	case PAM_ACCT_EXPIRED:
	case PAM_NEW_AUTHTOK_REQD:
	case PAM_PERM_DENIED:
	case PAM_CONV_ERR:
		return POPLAR_VERIFY_FAIL;
	default:
		return POPLAR_VERIFY_TEMP;
	}
}

static enum poplar_verify
pam_verify(void *b, const char *name, const char *password,
	   const char *rhost, char *user, char *detail, const char **reason_r)
{
	struct pass_pam *p = b;
	struct conv_data cd = { .password = password };
	struct pam_conv conv = { conversation, &cd };
	pam_handle_t *h = NULL;
	const void *item = NULL;
	const char *step = "pam_start";
	int r;

	user[0] = '\0';
	if (strlen(name) > POPLAR_USER_MAX) {
		*reason_r = "user name too long";
		return POPLAR_VERIFY_FAIL;
	}
	r = pam_start(p->service, name, &conv, &h);
	if (r != PAM_SUCCESS) {
		snprintf(p->reason, sizeof(p->reason), "pam_start(%s) failed",
			 p->service);
		*reason_r = p->reason;
		return POPLAR_VERIFY_TEMP;
	}
	if (rhost != NULL)
		(void)pam_set_item(h, PAM_RHOST, rhost);
	step = "pam_authenticate";
	r = pam_authenticate(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	if (r == PAM_SUCCESS) {
		step = "pam_acct_mgmt";
		r = pam_acct_mgmt(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	}
	if (r == PAM_SUCCESS) {
		/* A module may have changed the name (case, aliases). */
		const char *u = name;

		if (pam_get_item(h, PAM_USER, &item) == PAM_SUCCESS &&
		    item != NULL)
			u = item;
		if (strlen(u) > POPLAR_USER_MAX) {
			r = PAM_USER_UNKNOWN;
			step = "PAM_USER";
		} else {
			strcpy(user, u);
		}
	}
	if (r != PAM_SUCCESS)
		snprintf(p->reason, sizeof(p->reason), "%s: %s", step,
			 pam_strerror(h, r));
	pam_end(h, r);
	if (r == PAM_SUCCESS) {
		snprintf(detail, POPLAR_DETAIL_MAX, "backend=pam");
		*reason_r = NULL;
		return POPLAR_VERIFY_OK;
	}
	*reason_r = p->reason;
	return classify(r);
}

const struct pass_backend poplar_pass_backend = {
	.abi = PASS_BACKEND_ABI,
	.name = "pam",
	.keys = ", pam_service",
	.name_max = POPLAR_USER_MAX,
	.create = pam_create,
	.set = pam_set,
	.finish = NULL,
	.destroy = pam_destroy,
	.check = NULL,
	.verify = pam_verify,
};
