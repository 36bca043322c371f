/* krb5check.c: the Kerberos set-up check of -t and --check-kerberos (see
 * krb5check.h).  Runs in the master with the privileges poplard was
 * started with, which are those its sessions have before they log in. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "krb5check.h"

/* MIT krb5's replay cache directory when KRB5RCACHEDIR is not set. */
#define RCACHE_DEFAULT_DIR "/var/tmp"
/* A keytab holding more entries than this is not listed in full. */
#define KEYTAB_LIST_MAX 200

const char *
krb5_rcache_dir(void)
{
	const char *dir = getenv("KRB5RCACHEDIR");

	return dir != NULL && *dir != '\0' ? dir : RCACHE_DEFAULT_DIR;
}

static int
problem(FILE *out, const char *what, const char *advice)
{
	fprintf(out, "  problem: %s\n", what);
	if (advice != NULL)
		fprintf(out, "    advice: %s\n", advice);
	return -1;
}

/* The file behind a FILE: or WRFILE: keytab name, or NULL. */
static const char *
keytab_file(const char *name)
{
	if (strncmp(name, "FILE:", 5) == 0)
		return name + 5;
	if (strncmp(name, "WRFILE:", 7) == 0)
		return name + 7;
	if (name[0] == '/')
		return name;
	return NULL;
}

static bool
component_is(krb5_const_principal p, int i, const char *s)
{
	size_t n = strlen(s);

	return p->length > i && p->data[i].length == n &&
	       memcmp(p->data[i].data, s, n) == 0;
}

static int
check_keytab(krb5_context ctx, const struct krb5_setup *st, FILE *out,
	     int verbose)
{
	char name[1024], msg[1400];
	const char *file;
	bool any_host = st->host == NULL || strcmp(st->host, "*") == 0;
	krb5_keytab kt = NULL;
	krb5_kt_cursor cur;
	krb5_keytab_entry ent;
	unsigned int total = 0, matching = 0;
	krb5_error_code ret;
	int rc = 0;

	ret = st->keytab != NULL ? krb5_kt_resolve(ctx, st->keytab, &kt)
				 : krb5_kt_default(ctx, &kt);
	if (ret != 0) {
		snprintf(msg, sizeof(msg), "keytab %s: %s",
			 st->keytab ? st->keytab : "(default)",
			 krb5_get_error_message(ctx, ret));
		return problem(out, msg, "set keytab = /path/to/file");
	}
	if (krb5_kt_get_name(ctx, kt, name, sizeof(name)) != 0)
		snprintf(name, sizeof(name), "%s",
			 st->keytab ? st->keytab : "(default)");
	if (verbose)
		fprintf(out, "  keytab: %s%s\n", name,
			st->keytab ? "" : " (the default keytab)");
	file = keytab_file(name);
	if (file != NULL && access(file, R_OK) != 0) {
		int e = errno;

		snprintf(msg, sizeof(msg), "keytab %s cannot be read by uid "
			 "%ld: %s", file, (long)geteuid(), strerror(e));
		rc = problem(out, msg, e == ENOENT
			     ? "extract the service key: kadmin -q "
			       "\"ktadd -k FILE SERVICE/HOST\""
			     : "poplard reads the keytab before it drops "
			       "privileges: run it as root, or make the "
			       "keytab readable by its user");
		goto out;
	}
	ret = krb5_kt_start_seq_get(ctx, kt, &cur);
	if (ret != 0) {
		snprintf(msg, sizeof(msg), "keytab %s: %s", name,
			 krb5_get_error_message(ctx, ret));
		rc = problem(out, msg, NULL);
		goto out;
	}
	while (total < KEYTAB_LIST_MAX &&
	       krb5_kt_next_entry(ctx, kt, &ent, &cur) == 0) {
		char *pname = NULL;
		bool match = ent.principal->length == 2 &&
			     component_is(ent.principal, 0, st->service) &&
			     (any_host ||
			      component_is(ent.principal, 1, st->host));

		total++;
		matching += match;
		if (verbose && krb5_unparse_name(ctx, ent.principal,
						 &pname) == 0) {
			char etype[64];

			if (krb5_enctype_to_name(ent.key.enctype, 1, etype,
						 sizeof(etype)) != 0)
				snprintf(etype, sizeof(etype), "enctype %d",
					 (int)ent.key.enctype);
			fprintf(out, "    %s %s kvno %u %s\n",
				match ? "*" : "-", pname, ent.vno, etype);
			krb5_free_unparsed_name(ctx, pname);
		}
		krb5_free_keytab_entry_contents(ctx, &ent);
	}
	krb5_kt_end_seq_get(ctx, kt, &cur);
	if (verbose)
		fprintf(out, "  keys for %s/%s: %u of %u entr%s%s\n",
			st->service, any_host ? "*" : st->host, matching,
			total, total == 1 ? "y" : "ies",
			total == KEYTAB_LIST_MAX ? " (listing stopped)" : "");
	if (matching == 0) {
		snprintf(msg, sizeof(msg), "keytab %s holds no key for %s/%s",
			 name, st->service, any_host ? "*" : st->host);
		rc = problem(out, msg, "add one (kadmin: addprinc -randkey "
			     "SERVICE/HOST, then ktadd -k KEYTAB "
			     "SERVICE/HOST), or set host and service to a "
			     "principal the keytab holds");
	}
out:
	krb5_kt_close(ctx, kt);
	return rc;
}

static int
check_rcache(FILE *out, int verbose)
{
	const char *type = getenv("KRB5RCACHETYPE");
	const char *dir = krb5_rcache_dir();
	char msg[1200];

	if (getenv("KRB5RCACHENAME") != NULL) {
		if (verbose)
			fprintf(out, "  replay cache: %s (KRB5RCACHENAME)\n",
				getenv("KRB5RCACHENAME"));
		return 0;
	}
	if (type != NULL && strcmp(type, "none") == 0) {
		fprintf(out, "  warning: KRB5RCACHETYPE=none turns replay "
			"protection off: a captured exchange can be replayed\n");
		return 0;
	}
	if (verbose)
		fprintf(out, "  replay cache: %s/krb5_%ld.rcache2\n", dir,
			(long)geteuid());
	if (access(dir, W_OK | X_OK) != 0) {
		snprintf(msg, sizeof(msg), "replay cache directory %s is not "
			 "usable by uid %ld: %s (every login would fail)", dir,
			 (long)geteuid(), strerror(errno));
		return problem(out, msg, "create it, or point KRB5RCACHEDIR "
			       "at a directory poplard can write");
	}
	return 0;
}

int
krb5_setup_check(krb5_context ctx, const struct krb5_setup *st,
		 const struct principal_policy *pol, FILE *out, int verbose)
{
	char *realm = NULL;
	int rc = 0;

	if (krb5_get_default_realm(ctx, &realm) == 0) {
		if (verbose)
			fprintf(out, "  default realm: %s\n", realm);
		krb5_free_default_realm(ctx, realm);
	} else {
		rc = problem(out, "krb5.conf names no default realm",
			     "set default_realm in [libdefaults] of "
			     "krb5.conf (KRB5_CONFIG)");
	}
	if (verbose) {
		fprintf(out, "  service principal: %s/%s\n", st->service,
			st->host == NULL || strcmp(st->host, "*") == 0
			? "* (any host key of the keytab)" : st->host);
		if (pol != NULL)
			principal_policy_print(pol, out);
	}
	if (check_keytab(ctx, st, out, verbose) < 0)
		rc = -1;
	if (st->need_rcache && check_rcache(out, verbose) < 0)
		rc = -1;
	return rc;
}
