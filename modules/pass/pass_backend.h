/* pass_backend.h: the pass module's password backends other than the
 * host's userdb: Kerberos passwords (pass_krb5.c) and PAM (pass_pam.c).
 *
 * Each backend is a shared object of its own, pass-NAME.so beside
 * pass.so, exporting one symbol, PASS_BACKEND_SYMBOL, a const struct
 * pass_backend.  pass.so loads the configured one at init (in the master)
 * and no other: a server that checks passwords against its userdb never
 * maps the Kerberos or PAM libraries, which keeps every session's fork
 * cheap, and packagers can ship the backends apart.
 *
 * A backend checks a USER name and a password and names the local user to
 * log in as (for krb5, the principal's mapped user; for PAM, the user PAM
 * settled on).  Results are enum poplar_verify: OK, FAIL (unknown user,
 * wrong password, refused: the client gets the usual -ERR [AUTH]) or TEMP
 * (the KDC or PAM is unavailable: -ERR [SYS/TEMP]).  reason_r is a string
 * owned by the backend, valid until its next call. */
#ifndef POPLAR_PASS_BACKEND_H
#define POPLAR_PASS_BACKEND_H

#include <stddef.h>
#include <stdio.h>
#include "poplar-module.h"

#define PASS_BACKEND_SYMBOL "poplar_pass_backend"
/* Bumped on any change of struct pass_backend: pass.so refuses a backend
 * of another version (they are built and installed together). */
#define PASS_BACKEND_ABI 1

struct pass_backend {
	unsigned int abi;               /* PASS_BACKEND_ABI */
	const char *name;               /* "krb5", "pam" */
	const char *keys;               /* its keys, ", a, b" (for errors) */
	size_t name_max;                /* longest USER name it takes */
	void *(*create)(void);          /* NULL: out of memory */
	int (*set)(void *b, const char *key, const char *value,
		   const char **error_r);
	/* After the last key; NULL when there is nothing to do. */
	int (*finish)(void *b, const struct poplar_host *host,
		      const char **error_r);
	void (*destroy)(void *b);
	/* poplard -t: NULL when there is nothing to check. */
	int (*check)(void *b, FILE *out, int verbose);
	/* user gets the local user on OK; detail (POPLAR_DETAIL_MAX bytes)
	 * may get log text; rhost is the client's address. */
	enum poplar_verify (*verify)(void *b, const char *name,
				     const char *password, const char *rhost,
				     char *user, char *detail,
				     const char **reason_r);
};

/* Longest USER name handed to a backend (Kerberos principals with
 * instance and realm are longer than local user names). */
#define PASS_NAME_MAX 256

#endif
