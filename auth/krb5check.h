/* krb5check.h: the Kerberos set-up check shared by the modules that
 * accept Kerberos credentials (kpop, the pass module's krb5 backend), for
 * `poplard -t` and `poplard --check-kerberos`.
 *
 * It looks at what a login will need and says what is wrong, with advice:
 * the default realm, the keytab (which one, readable or not, which
 * SERVICE/HOST keys and kvnos it holds), the host name that will be used,
 * and the replay cache directory. */
#ifndef POPLAR_KRB5CHECK_H
#define POPLAR_KRB5CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <krb5.h>
#include "principal.h"

struct krb5_setup {
	const char *keytab;     /* keytab name, or NULL for the default */
	const char *service;    /* "pop" */
	const char *host;       /* host part of the service principal;
				   NULL or "*" for any key of the service */
	bool need_rcache;       /* the module uses a replay cache */
};

/* Print the findings on out (everything when verbose, else only
 * problems), each line indented by two spaces.  Returns 0 when logins can
 * work, -1 when a problem found will make them fail. */
int krb5_setup_check(krb5_context ctx, const struct krb5_setup *setup,
		     const struct principal_policy *pol, FILE *out,
		     int verbose);

/* The replay cache directory krb5 will use (KRB5RCACHEDIR or the
 * built-in default).  Static string or the environment's. */
const char *krb5_rcache_dir(void);

#endif
