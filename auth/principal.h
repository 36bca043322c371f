/* principal.h: the one policy that turns a Kerberos principal into a
 * local user name.  Built into every module that accepts Kerberos
 * identities (kpop, the pass module's krb5 backend, GSSAPI in sasl), so
 * that all of them answer "who is alice@EXAMPLE.ORG here?" the same way.
 *
 * The policy has two parts, checked in this order:
 *
 *  1. The realm allow-list.  A principal whose realm is not listed is
 *     refused before any mapping.  The default list is the default realm
 *     of krb5.conf (libdefaults default_realm).
 *
 *  2. The mapping, one of:
 *     - auth_to_local (default): krb5_aname_to_localname(), which applies
 *       the realm's auth_to_local rules of krb5.conf (or MIT's default
 *       rule: one-component principals of the default realm map to their
 *       name).  With kuserok = yes, krb5_kuserok() must also accept the
 *       principal for the mapped user (so ~/.k5login is honoured); that
 *       needs the user to exist in the system's passwd database.
 *     - file:PATH: an explicit map file, read once when the policy is
 *       finished (at start-up).  One "PRINCIPAL USER" pair per line,
 *       separated by blanks; '#' starts a comment.  PRINCIPAL is a full
 *       name with its realm ("bob/admin@EXAMPLE.ORG") or "*@REALM", which
 *       matches every one-component principal of REALM; USER "*" then
 *       stands for that component.  The first matching line wins.
 *
 * Mapped names must be valid local user names (see principal_user_valid)
 * of at most POPLAR_USER_MAX bytes; anything else is refused.
 *
 * Configuration keys (in the module's own section), parsed by
 * principal_policy_set():
 *   realms        = REALM ...       allowed realms (default: default realm)
 *   principal_map = auth_to_local | file:PATH
 *   kuserok       = yes | no        (default no; auth_to_local only)
 *
 * Usage:
 *   struct principal_policy *pol = principal_policy_new();
 *   for each key: principal_policy_set(pol, key, value, &error);
 *   principal_policy_finish(pol, ctx, &error);    (at start-up)
 *   ... principal_map(ctx, pol, princ, user, sizeof(user), &rule, &error);
 *   principal_policy_free(&pol);
 *
 * Nothing here keeps a krb5_context: the caller passes its own.  Errors
 * are static strings or strings owned by the policy (valid until the next
 * call on it, or its free); callers copy what they want to keep. */
#ifndef POPLAR_PRINCIPAL_H
#define POPLAR_PRINCIPAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <krb5.h>

struct principal_policy;

/* A new policy with the defaults (no realms yet: finish fills in the
 * default realm).  NULL when out of memory. */
struct principal_policy *principal_policy_new(void);
/* Free the policy and set *pol to NULL.  NULL is fine. */
void principal_policy_free(struct principal_policy **pol);

/* Offer one configuration item to the policy.  Returns 1 when the key is
 * one of the policy's (realms, principal_map, kuserok) and was accepted,
 * 0 when the key is not the policy's (the caller handles it), -1 with
 * *error_r set when the value is invalid. */
int principal_policy_set(struct principal_policy *pol, const char *key,
			 const char *value, const char **error_r);

/* Complete the policy after the last key: take the default realm when no
 * realms were given, read and check the map file.  Returns 0, or -1 with
 * *error_r ("map file PATH line N: ..." or a krb5 message). */
int principal_policy_finish(struct principal_policy *pol, krb5_context ctx,
			    const char **error_r);

/* Map princ to a local user.  Returns:
 *   1  mapped: user holds the NUL-terminated name; *rule_r names the
 *      rule that matched ("auth_to_local", "auth_to_local+kuserok",
 *      "map_file:LINE"); the string lives in the policy;
 *   0  refused: realm not allowed, no rule maps the principal, the
 *      mapped name is invalid or too long for size, or kuserok said no;
 *      *error_r says which;
 *  -1  a krb5 error unrelated to the principal (out of memory, bad
 *      krb5.conf); *error_r says which.
 * user is "" unless 1 is returned.  rule_r and error_r may be NULL. */
int principal_map(krb5_context ctx, const struct principal_policy *pol,
		  krb5_const_principal princ, char *user, size_t size,
		  const char **rule_r, const char **error_r);

/* 1 when the principal's realm is on the allow-list. */
int principal_realm_allowed(const struct principal_policy *pol,
			    krb5_const_principal princ);

/* The principal's realm copied into buf (truncated to size-1 bytes). */
void principal_realm(krb5_const_principal princ, char *buf, size_t size);

/* 1 when name can be a local user name: 1 to POPLAR_USER_MAX bytes of
 * letters, digits, '.', '_', '-' and '+' (and '$' last), not starting
 * with '-' or '.'. */
int principal_user_valid(const char *name);

/* Describe the policy on out, one "  key: value" line each (for -t and
 * --check-kerberos). */
void principal_policy_print(const struct principal_policy *pol, FILE *out);

#endif
