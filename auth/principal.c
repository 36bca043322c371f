/* principal.c: principal -> local user policy (realm allow-list, then
 * auth_to_local or an explicit map file).  See principal.h.
 *
 * Runs in the master at start-up (parsing, reading the map file) and in
 * session processes before the privilege drop (mapping). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "poplar-module.h"
#include "principal.h"

/* Realms in the allow-list: a site lists a handful. */
#define PRINCIPAL_REALMS_MAX 32
/* A map file line: a principal (realm included) and a user name.
 * Principals longer than this are not worth supporting. */
#define PRINCIPAL_MAP_LINE_MAX 1024
/* Map files are written by hand; this many lines is already a lot. */
#define PRINCIPAL_MAP_ENTRIES_MAX 100000

enum map_mode { MAP_AUTH_TO_LOCAL, MAP_FILE };

struct map_entry {
	char *principal;        /* full name, or "*@REALM" */
	char *user;             /* local name, or "*" */
	unsigned int line;
	char rule[32];          /* "map_file:LINE" */
};

struct principal_policy {
	char *realms[PRINCIPAL_REALMS_MAX];
	size_t nrealms;
	enum map_mode mode;
	char *map_path;
	bool kuserok;
	struct map_entry *entries;
	size_t nentries;
	char error[PRINCIPAL_MAP_LINE_MAX + 128];
};

struct principal_policy *
principal_policy_new(void)
{
	return calloc(1, sizeof(struct principal_policy));
}

static void
realms_clear(struct principal_policy *pol)
{
	for (size_t i = 0; i < pol->nrealms; i++)
		free(pol->realms[i]);
	pol->nrealms = 0;
}

static void
entries_clear(struct principal_policy *pol)
{
	for (size_t i = 0; i < pol->nentries; i++) {
		free(pol->entries[i].principal);
		free(pol->entries[i].user);
	}
	free(pol->entries);
	pol->entries = NULL;
	pol->nentries = 0;
}

void
principal_policy_free(struct principal_policy **polp)
{
	struct principal_policy *pol = *polp;

	if (pol == NULL)
		return;
	realms_clear(pol);
	entries_clear(pol);
	free(pol->map_path);
	free(pol);
	*polp = NULL;
}

static int
set_realms(struct principal_policy *pol, const char *value,
	   const char **error_r)
{
	const char *p = value;

	realms_clear(pol);
	for (;;) {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		n = strcspn(p, " \t");
		if (pol->nrealms == PRINCIPAL_REALMS_MAX) {
			*error_r = "too many realms (at most 32)";
			return -1;
		}
		pol->realms[pol->nrealms] = strndup(p, n);
		if (pol->realms[pol->nrealms] == NULL) {
			*error_r = "out of memory";
			return -1;
		}
		if (strchr(pol->realms[pol->nrealms], '@') != NULL) {
			free(pol->realms[pol->nrealms]);
			*error_r = "a realm name cannot contain '@'";
			return -1;
		}
		pol->nrealms++;
		p += n;
	}
	if (pol->nrealms == 0) {
		*error_r = "realms needs at least one realm";
		return -1;
	}
	return 0;
}

int
principal_policy_set(struct principal_policy *pol, const char *key,
		     const char *value, const char **error_r)
{
	if (strcmp(key, "realms") == 0)
		return set_realms(pol, value, error_r) < 0 ? -1 : 1;
	if (strcmp(key, "principal_map") == 0) {
		if (strcmp(value, "auth_to_local") == 0) {
			pol->mode = MAP_AUTH_TO_LOCAL;
			free(pol->map_path);
			pol->map_path = NULL;
			return 1;
		}
		if (strncmp(value, "file:", 5) == 0 && value[5] == '/') {
			free(pol->map_path);
			pol->map_path = strdup(value + 5);
			if (pol->map_path == NULL) {
				*error_r = "out of memory";
				return -1;
			}
			pol->mode = MAP_FILE;
			return 1;
		}
		*error_r = "principal_map must be auth_to_local or "
			   "file:/absolute/path";
		return -1;
	}
	if (strcmp(key, "kuserok") == 0) {
		if (strcmp(value, "yes") == 0)
			pol->kuserok = true;
		else if (strcmp(value, "no") == 0)
			pol->kuserok = false;
		else {
			*error_r = "kuserok must be yes or no";
			return -1;
		}
		return 1;
	}
	return 0;
}

int
principal_user_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > POPLAR_USER_MAX || name[0] == '-' || name[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (isalnum(c) || c == '.' || c == '_' || c == '-' || c == '+')
			continue;
		if (c == '$' && i == n - 1)
			continue;
		return 0;
	}
	return 1;
}

/* Check one map file principal: "*@REALM" or NAME@REALM with a non-empty
 * name and realm. */
static int
map_principal_valid(const char *p)
{
	const char *at = strrchr(p, '@');

	return at != NULL && at != p && at[1] != '\0';
}

static int
map_fail(struct principal_policy *pol, unsigned int line, const char *what,
	 const char **error_r)
{
	snprintf(pol->error, sizeof(pol->error), "map file %s line %u: %s",
		 pol->map_path, line, what);
	*error_r = pol->error;
	return -1;
}

static int
map_load(struct principal_policy *pol, const char **error_r)
{
	char buf[PRINCIPAL_MAP_LINE_MAX + 2];
	unsigned int line = 0;
	FILE *f;
	int rc = -1;

	entries_clear(pol);
	f = fopen(pol->map_path, "r");
	if (f == NULL) {
		snprintf(pol->error, sizeof(pol->error), "map file %s: %s",
			 pol->map_path, strerror(errno));
		*error_r = pol->error;
		return -1;
	}
	while (fgets(buf, sizeof(buf), f) != NULL) {
		char *p, *princ, *user, *extra;
		struct map_entry *e;
		size_t len = strlen(buf);

		line++;
		if (len > 0 && buf[len - 1] != '\n' && !feof(f)) {
			map_fail(pol, line, "line too long", error_r);
			goto out;
		}
		if ((p = strchr(buf, '#')) != NULL)
			*p = '\0';
		princ = strtok(buf, " \t\r\n");
		if (princ == NULL)
			continue;
		user = strtok(NULL, " \t\r\n");
		extra = strtok(NULL, " \t\r\n");
		if (user == NULL || extra != NULL) {
			map_fail(pol, line, "expected PRINCIPAL USER", error_r);
			goto out;
		}
		if (!map_principal_valid(princ)) {
			map_fail(pol, line, "principal must be NAME@REALM or "
				 "*@REALM", error_r);
			goto out;
		}
		if (strcmp(user, "*") == 0 ? strncmp(princ, "*@", 2) != 0
					   : !principal_user_valid(user)) {
			map_fail(pol, line, strcmp(user, "*") == 0
				 ? "user '*' needs a *@REALM principal"
				 : "invalid local user name", error_r);
			goto out;
		}
		if (pol->nentries == PRINCIPAL_MAP_ENTRIES_MAX) {
			map_fail(pol, line, "too many entries", error_r);
			goto out;
		}
		e = realloc(pol->entries, (pol->nentries + 1) * sizeof(*e));
		if (e == NULL) {
			*error_r = "out of memory";
			goto out;
		}
		pol->entries = e;
		e = &pol->entries[pol->nentries];
		e->principal = strdup(princ);
		e->user = strdup(user);
		e->line = line;
		snprintf(e->rule, sizeof(e->rule), "map_file:%u", line);
		pol->nentries++;
		if (e->principal == NULL || e->user == NULL) {
			*error_r = "out of memory";
			goto out;
		}
	}
	if (ferror(f)) {
		snprintf(pol->error, sizeof(pol->error), "map file %s: read "
			 "error", pol->map_path);
		*error_r = pol->error;
		goto out;
	}
	rc = 0;
out:
	fclose(f);
	if (rc < 0)
		entries_clear(pol);
	return rc;
}

int
principal_policy_finish(struct principal_policy *pol, krb5_context ctx,
			const char **error_r)
{
	if (pol->nrealms == 0) {
		char *realm = NULL;
		krb5_error_code ret = krb5_get_default_realm(ctx, &realm);

		if (ret != 0) {
			*error_r = "no realms given and krb5.conf has no "
				   "default_realm (set realms = ...)";
			return -1;
		}
		pol->realms[0] = strdup(realm);
		krb5_free_default_realm(ctx, realm);
		if (pol->realms[0] == NULL) {
			*error_r = "out of memory";
			return -1;
		}
		pol->nrealms = 1;
	}
	if (pol->kuserok && pol->mode != MAP_AUTH_TO_LOCAL) {
		*error_r = "kuserok = yes needs principal_map = auth_to_local";
		return -1;
	}
	if (pol->mode == MAP_FILE)
		return map_load(pol, error_r);
	return 0;
}

void
principal_realm(krb5_const_principal princ, char *buf, size_t size)
{
	size_t n = princ->realm.length;

	if (size == 0)
		return;
	if (n > size - 1)
		n = size - 1;
	memcpy(buf, princ->realm.data, n);
	buf[n] = '\0';
}

int
principal_realm_allowed(const struct principal_policy *pol,
			krb5_const_principal princ)
{
	for (size_t i = 0; i < pol->nrealms; i++) {
		size_t n = strlen(pol->realms[i]);

		if (n == princ->realm.length &&
		    memcmp(pol->realms[i], princ->realm.data, n) == 0)
			return 1;
	}
	return 0;
}

static int
refuse(const char **error_r, const char *why)
{
	if (error_r != NULL)
		*error_r = why;
	return 0;
}

static int
map_file_lookup(krb5_context ctx, const struct principal_policy *pol,
		krb5_const_principal princ, char *user, size_t size,
		const char **rule_r, const char **error_r)
{
	char realm[256];
	char *name = NULL;
	int rc = 0;

	if (krb5_unparse_name(ctx, princ, &name) != 0) {
		if (error_r != NULL)
			*error_r = "cannot unparse the principal";
		return -1;
	}
	principal_realm(princ, realm, sizeof(realm));
	for (size_t i = 0; i < pol->nentries; i++) {
		const struct map_entry *e = &pol->entries[i];
		const char *local;

		if (strncmp(e->principal, "*@", 2) == 0) {
			if (princ->length != 1 ||
			    strcmp(e->principal + 2, realm) != 0)
				continue;
			if (strcmp(e->user, "*") != 0)
				local = e->user;
			else {
				/* The one component, which must be a
				 * plain string to be a user name. */
				const krb5_data *c = &princ->data[0];

				if (c->length == 0 || c->length >= size ||
				    memchr(c->data, '\0', c->length) != NULL) {
					rc = refuse(error_r, "principal name "
						    "is not a valid user name");
					goto out;
				}
				memcpy(user, c->data, c->length);
				user[c->length] = '\0';
				local = NULL;
			}
		} else if (strcmp(e->principal, name) == 0) {
			local = e->user;
		} else {
			continue;
		}
		if (local != NULL) {
			if (strlen(local) >= size) {
				rc = refuse(error_r, "mapped user name too "
					    "long");
				goto out;
			}
			strcpy(user, local);
		}
		if (!principal_user_valid(user)) {
			user[0] = '\0';
			rc = refuse(error_r, "principal name is not a valid "
				    "user name");
			goto out;
		}
		if (rule_r != NULL)
			*rule_r = e->rule;
		rc = 1;
		goto out;
	}
	rc = refuse(error_r, "no line of the map file matches");
out:
	krb5_free_unparsed_name(ctx, name);
	return rc;
}

int
principal_map(krb5_context ctx, const struct principal_policy *pol,
	      krb5_const_principal princ, char *user, size_t size,
	      const char **rule_r, const char **error_r)
{
	char local[POPLAR_USER_MAX + 2];
	krb5_error_code ret;
	int r;

	if (size == 0)
		return refuse(error_r, "no room for a user name");
	user[0] = '\0';
	if (rule_r != NULL)
		*rule_r = NULL;
	if (!principal_realm_allowed(pol, princ))
		return refuse(error_r, "realm not allowed");
	if (pol->mode == MAP_FILE) {
		r = map_file_lookup(ctx, pol, princ, user, size, rule_r,
				    error_r);
		if (r != 1)
			user[0] = '\0';
		return r;
	}

	ret = krb5_aname_to_localname(ctx, princ, sizeof(local), local);
	if (ret == KRB5_LNAME_NOTRANS || ret == KRB5_NO_LOCALNAME)
		return refuse(error_r, "no auth_to_local rule maps the "
			      "principal");
	if (ret == KRB5_CONFIG_NOTENUFSPACE)
		return refuse(error_r, "mapped user name too long");
	if (ret != 0) {
		if (error_r != NULL)
			*error_r = "krb5_aname_to_localname failed";
		return -1;
	}
	if (!principal_user_valid(local))
		return refuse(error_r, "mapped name is not a valid user name");
	if (strlen(local) >= size)
		return refuse(error_r, "mapped user name too long");
	if (pol->kuserok && !krb5_kuserok(ctx, (krb5_principal)princ, local))
		return refuse(error_r, "krb5_kuserok refused the principal "
			      "for the mapped user");
	strcpy(user, local);
	if (rule_r != NULL)
		*rule_r = pol->kuserok ? "auth_to_local+kuserok"
				       : "auth_to_local";
	return 1;
}

void
principal_policy_print(const struct principal_policy *pol, FILE *out)
{
	fprintf(out, "  allowed realms: ");
	for (size_t i = 0; i < pol->nrealms; i++)
		fprintf(out, "%s%s", i ? " " : "", pol->realms[i]);
	fprintf(out, "%s\n", pol->nrealms ? "" : "(the default realm)");
	if (pol->mode == MAP_FILE)
		fprintf(out, "  principal_map: file %s (%zu entr%s)\n",
			pol->map_path, pol->nentries,
			pol->nentries == 1 ? "y" : "ies");
	else
		fprintf(out, "  principal_map: auth_to_local%s\n",
			pol->kuserok ? " + krb5_kuserok" : "");
}
