/* check_principal.c: unit tests of the principal -> local user policy
 * (auth/principal.c): realm allow-list, auth_to_local, map files. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "principal.h"

static char dir[] = "/tmp/poplar-princ.XXXXXX";
static char conf[256], map[256];
static krb5_context ctx;
static struct principal_policy *pol;

/* DNS stays off; alice/admin maps to alice by rule, everything else of
 * TEST.REALM by the default rule, and OTHER.REALM users by a rule. */
static const char krb5_conf[] =
	"[libdefaults]\n"
	"  default_realm = TEST.REALM\n"
	"  dns_lookup_kdc = false\n"
	"  dns_lookup_realm = false\n"
	"  dns_canonicalize_hostname = false\n"
	"  rdns = false\n"
	"[realms]\n"
	"  TEST.REALM = {\n"
	"    auth_to_local = RULE:[2:$1%$2@$0](^.*%admin@TEST\\.REALM$)s/%admin@.*//\n"
	"    auth_to_local = RULE:[1:$1@$0](^.*@OTHER\\.REALM$)s/@.*/-other/\n"
	"    auth_to_local = DEFAULT\n"
	"  }\n";

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

static void
setup(void)
{
	strcpy(dir, "/tmp/poplar-princ.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/krb5.conf", dir);
	snprintf(map, sizeof(map), "%s/map", dir);
	write_text(conf, krb5_conf);
	setenv("KRB5_CONFIG", conf, 1);
	ck_assert_int_eq(krb5_init_context(&ctx), 0);
	pol = principal_policy_new();
	ck_assert_ptr_nonnull(pol);
}

static void
teardown(void)
{
	principal_policy_free(&pol);
	krb5_free_context(ctx);
	unlink(conf);
	unlink(map);
	rmdir(dir);
}

/* Map name; returns principal_map's result and fills user and rule. */
static int
map_name(const char *name, char *user, size_t size, const char **rule,
	 const char **error)
{
	krb5_principal p;
	int r;

	ck_assert_int_eq(krb5_parse_name(ctx, name, &p), 0);
	r = principal_map(ctx, pol, p, user, size, rule, error);
	krb5_free_principal(ctx, p);
	return r;
}

static void
set_ok(const char *key, const char *value)
{
	const char *error = NULL;

	ck_assert_int_eq(principal_policy_set(pol, key, value, &error), 1);
}

static void
finish_ok(void)
{
	const char *error = NULL;

	ck_assert_msg(principal_policy_finish(pol, ctx, &error) == 0, "%s",
		      error);
}

START_TEST(test_default_realm_only)
{
	char user[65];
	const char *rule = NULL, *error = NULL;

	finish_ok();
	ck_assert_int_eq(map_name("alice@TEST.REALM", user, sizeof(user),
				  &rule, &error), 1);
	ck_assert_str_eq(user, "alice");
	ck_assert_str_eq(rule, "auth_to_local");
	/* by the admin rule */
	ck_assert_int_eq(map_name("alice/admin@TEST.REALM", user,
				  sizeof(user), &rule, &error), 1);
	ck_assert_str_eq(user, "alice");
	/* two components, no rule */
	ck_assert_int_eq(map_name("pop/localhost@TEST.REALM", user,
				  sizeof(user), &rule, &error), 0);
	ck_assert_str_eq(user, "");
	ck_assert_ptr_null(rule);
	ck_assert_ptr_nonnull(strstr(error, "no auth_to_local rule"));
	/* another realm is not on the default allow-list */
	ck_assert_int_eq(map_name("bob@OTHER.REALM", user, sizeof(user),
				  &rule, &error), 0);
	ck_assert_str_eq(error, "realm not allowed");
}
END_TEST

START_TEST(test_realm_list)
{
	char user[65];
	const char *rule = NULL, *error = NULL;

	set_ok("realms", "OTHER.REALM  TEST.REALM");
	finish_ok();
	ck_assert_int_eq(map_name("bob@OTHER.REALM", user, sizeof(user),
				  &rule, &error), 1);
	ck_assert_str_eq(user, "bob-other");
	ck_assert_int_eq(map_name("carol@THIRD.REALM", user, sizeof(user),
				  &rule, &error), 0);
	ck_assert_str_eq(error, "realm not allowed");

	/* a list without the default realm refuses it */
	set_ok("realms", "OTHER.REALM");
	ck_assert_int_eq(map_name("alice@TEST.REALM", user, sizeof(user),
				  &rule, &error), 0);
	ck_assert_str_eq(error, "realm not allowed");
}
END_TEST

START_TEST(test_short_buffer)
{
	char user[4];
	const char *error = NULL;

	finish_ok();
	ck_assert_int_eq(map_name("alice@TEST.REALM", user, sizeof(user),
				  NULL, &error), 0);
	ck_assert_str_eq(user, "");
	/* NULL rule and error pointers are allowed */
	ck_assert_int_eq(map_name("al@TEST.REALM", user, sizeof(user), NULL,
				  NULL), 1);
	ck_assert_str_eq(user, "al");
}
END_TEST

START_TEST(test_invalid_mapped_names)
{
	char user[65];
	const char *error = NULL;

	finish_ok();
	ck_assert_int_eq(map_name("-rf@TEST.REALM", user, sizeof(user),
				  NULL, &error), 0);
	ck_assert_int_eq(map_name(".hidden@TEST.REALM", user, sizeof(user),
				  NULL, &error), 0);
	ck_assert_int_eq(map_name("a\\ b@TEST.REALM", user, sizeof(user),
				  NULL, &error), 0);
	ck_assert_str_eq(user, "");
}
END_TEST

START_TEST(test_user_valid)
{
	char longname[80];

	ck_assert_int_eq(principal_user_valid("alice"), 1);
	ck_assert_int_eq(principal_user_valid("a.b_c-d+e"), 1);
	ck_assert_int_eq(principal_user_valid("host$"), 1);
	ck_assert_int_eq(principal_user_valid("ho$t"), 0);
	ck_assert_int_eq(principal_user_valid(""), 0);
	ck_assert_int_eq(principal_user_valid("-x"), 0);
	ck_assert_int_eq(principal_user_valid(".x"), 0);
	ck_assert_int_eq(principal_user_valid("a/b"), 0);
	ck_assert_int_eq(principal_user_valid("a@b"), 0);
	ck_assert_int_eq(principal_user_valid("a b"), 0);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_int_eq(principal_user_valid(longname), 0);
	longname[64] = '\0';
	ck_assert_int_eq(principal_user_valid(longname), 1);
}
END_TEST

START_TEST(test_set_errors)
{
	const char *error = NULL;

	ck_assert_int_eq(principal_policy_set(pol, "keytab", "/x", &error), 0);
	ck_assert_int_eq(principal_policy_set(pol, "principal_map", "ldap",
					      &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "auth_to_local"));
	ck_assert_int_eq(principal_policy_set(pol, "principal_map",
					      "file:relative", &error), -1);
	ck_assert_int_eq(principal_policy_set(pol, "kuserok", "maybe",
					      &error), -1);
	ck_assert_int_eq(principal_policy_set(pol, "realms", "  ", &error),
			 -1);
	ck_assert_int_eq(principal_policy_set(pol, "realms", "A@B", &error),
			 -1);
	/* kuserok needs auth_to_local */
	set_ok("kuserok", "yes");
	ck_assert_int_eq(principal_policy_set(pol, "principal_map",
					      "file:/nonexistent/map", &error),
			 1);
	ck_assert_int_eq(principal_policy_finish(pol, ctx, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "kuserok"));
}
END_TEST

START_TEST(test_map_file)
{
	char user[65], opt[300];
	const char *rule = NULL, *error = NULL;

	write_text(map,
		   "# explicit entries first\n"
		   "bob/admin@TEST.REALM  root-bob\n"
		   "\n"
		   "alice@TEST.REALM\talice2   # a comment\n"
		   "*@TEST.REALM *\n"
		   "*@OTHER.REALM guest\n");
	snprintf(opt, sizeof(opt), "file:%s", map);
	set_ok("principal_map", opt);
	set_ok("realms", "TEST.REALM OTHER.REALM");
	finish_ok();
	ck_assert_int_eq(map_name("alice@TEST.REALM", user, sizeof(user),
				  &rule, &error), 1);
	ck_assert_str_eq(user, "alice2");
	ck_assert_str_eq(rule, "map_file:4");
	ck_assert_int_eq(map_name("bob/admin@TEST.REALM", user, sizeof(user),
				  &rule, &error), 1);
	ck_assert_str_eq(user, "root-bob");
	ck_assert_str_eq(rule, "map_file:2");
	ck_assert_int_eq(map_name("carol@TEST.REALM", user, sizeof(user),
				  &rule, &error), 1);
	ck_assert_str_eq(user, "carol");
	ck_assert_str_eq(rule, "map_file:5");
	ck_assert_int_eq(map_name("dave@OTHER.REALM", user, sizeof(user),
				  &rule, &error), 1);
	ck_assert_str_eq(user, "guest");
	/* "*" matches one-component principals only */
	ck_assert_int_eq(map_name("carol/admin@TEST.REALM", user,
				  sizeof(user), &rule, &error), 0);
	ck_assert_ptr_nonnull(strstr(error, "no line"));
	/* "*" keeps the name, which must be a valid user name */
	ck_assert_int_eq(map_name("-x@TEST.REALM", user, sizeof(user),
				  &rule, &error), 0);
	ck_assert_str_eq(user, "");
}
END_TEST

static void
map_file_error(const char *text, const char *needle)
{
	char opt[300];
	const char *error = NULL;

	principal_policy_free(&pol);
	pol = principal_policy_new();
	write_text(map, text);
	snprintf(opt, sizeof(opt), "file:%s", map);
	set_ok("principal_map", opt);
	ck_assert_int_eq(principal_policy_finish(pol, ctx, &error), -1);
	ck_assert_msg(strstr(error, needle) != NULL, "%s", error);
}

START_TEST(test_map_file_errors)
{
	const char *text_error = NULL;
	char *text;

	map_file_error("alice@TEST.REALM\n", "line 1: expected PRINCIPAL USER");
	map_file_error("\n\na b c\n", "line 3: expected PRINCIPAL USER");
	map_file_error("alice alice\n", "line 1: principal must be");
	map_file_error("@TEST.REALM alice\n", "principal must be");
	map_file_error("alice@ alice\n", "principal must be");
	map_file_error("alice@TEST.REALM *\n", "needs a *@REALM");
	map_file_error("alice@TEST.REALM a/b\n", "invalid local user name");
	text = malloc(2000);
	ck_assert_ptr_nonnull(text);
	memset(text, 'a', 1990);
	strcpy(text + 1990, "@R x\n");
	map_file_error(text, "line 1: line too long");
	free(text);

	principal_policy_free(&pol);
	pol = principal_policy_new();
	set_ok("principal_map", "file:/nonexistent/poplar-map");
	ck_assert_int_eq(principal_policy_finish(pol, ctx, &text_error), -1);
	ck_assert_ptr_nonnull(strstr(text_error, "map file /nonexistent"));
}
END_TEST

START_TEST(test_print)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	ck_assert_ptr_nonnull(f);
	finish_ok();
	principal_policy_print(pol, f);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(out, "allowed realms: TEST.REALM"));
	ck_assert_ptr_nonnull(strstr(out, "principal_map: auth_to_local"));
	free(out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("principal");
	TCase *tc = tcase_create("principal");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_default_realm_only);
	tcase_add_test(tc, test_realm_list);
	tcase_add_test(tc, test_short_buffer);
	tcase_add_test(tc, test_invalid_mapped_names);
	tcase_add_test(tc, test_user_valid);
	tcase_add_test(tc, test_set_errors);
	tcase_add_test(tc, test_map_file);
	tcase_add_test(tc, test_map_file_errors);
	tcase_add_test(tc, test_print);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
