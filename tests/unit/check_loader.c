/* check_loader.c: unit tests for the module host (auth/loader.c), with
 * the test modules built in tests/modules and the pass module. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config.h"
#include "loader.h"

static char err[1024];

/* Where the test modules (testgood.so ...) and pass.so are: from the
 * environment under "make check", else relative to the build tree. */
static const char *
testmod_dir(void)
{
	const char *d = getenv("POPLAR_TESTMOD_DIR");

	return d != NULL && *d ? d : "tests/modules/.libs";
}

static const char *
module_build_dir(void)
{
	const char *d = getenv("POPLAR_MODULE_BUILD_DIR");

	return d != NULL && *d ? d : "modules/.libs";
}

static char *
mod_path(const char *dir, const char *name)
{
	char *p = NULL;

	ck_assert_int_ge(asprintf(&p, "%s/%s.so", dir, name), 0);
	return p;
}

/* Load dir/name.so expecting the descriptor name want (NULL: any). */
static struct loaded_module *
load(const char *dir, const char *name, const char *want)
{
	char *path = mod_path(dir, name);
	struct loaded_module *m;

	memset(err, 'x', sizeof(err) - 1);
	err[sizeof(err) - 1] = '\0';
	m = module_load_file(path, want, err, sizeof(err));
	free(path);
	return m;
}

/* Loading fails with an error that starts with the path and contains
 * each of the fragments. */
static void
load_fails(const char *dir, const char *name, const char *want,
	   const char *frag1, const char *frag2)
{
	char *path = mod_path(dir, name);
	struct loaded_module *m = load(dir, name, want);

	ck_assert_msg(m == NULL, "%s loaded", path);
	ck_assert_msg(strncmp(err, path, strlen(path)) == 0 &&
		      err[strlen(path)] == ':',
		      "error does not start with the path: %s", err);
	ck_assert_msg(strstr(err, frag1) != NULL, "no '%s' in: %s", frag1,
		      err);
	if (frag2 != NULL)
		ck_assert_msg(strstr(err, frag2) != NULL, "no '%s' in: %s",
			      frag2, err);
	free(path);
}

/* A configuration that offers name on one listener; extra goes into the
 * module's section, which begins on line 6 (items from line 7). */
static struct config *
config_for(const char *dir, const char *name, const char *extra)
{
	char *text = NULL;
	struct config *cfg;

	ck_assert_int_ge(asprintf(&text,
		"[server]\n"                            /* 1 */
		"module_dir = %s\n"                     /* 2 */
		"[listen pop3]\n"                       /* 3 */
		"address = 127.0.0.1:1110\n"            /* 4 */
		"auth = %s\n"                           /* 5 */
		"[module %s]\n"                         /* 6 */
		"%s",                                   /* 7... */
		dir, name, name, extra), 0);
	cfg = config_parse("t.conf", text, strlen(text), err, sizeof(err));
	ck_assert_msg(cfg != NULL, "config: %s", err);
	free(text);
	return cfg;
}

/* Loading. */

START_TEST(test_load_good)
{
	struct loaded_module *m = load(testmod_dir(), "testgood", "testgood");
	char *path = mod_path(testmod_dir(), "testgood");

	ck_assert_msg(m != NULL, "%s", err);
	ck_assert_str_eq(m->name, "testgood");
	ck_assert_str_eq(m->path, path);
	ck_assert_ptr_nonnull(m->handle);
	ck_assert_ptr_nonnull(m->desc);
	ck_assert_str_eq(m->desc->name, "testgood");
	ck_assert_uint_eq(m->desc->abi_major, POPLAR_MODULE_ABI_MAJOR);
	ck_assert_str_eq(m->desc->commands[0].name, "XTEST");
	ck_assert_str_eq(m->desc->commands[1].name, "XLOGIN");
	ck_assert_ptr_null(m->desc->commands[2].name);
	ck_assert(!m->initialised);
	module_unload(&m);
	ck_assert_ptr_null(m);
	module_unload(&m);              /* NULL: nothing to do */
	free(path);
}
END_TEST

START_TEST(test_load_any_name)
{
	/* without an expected name, the descriptor's name is taken */
	struct loaded_module *m = load(testmod_dir(), "testgood", NULL);

	ck_assert_msg(m != NULL, "%s", err);
	ck_assert_str_eq(m->name, "testgood");
	module_unload(&m);
}
END_TEST

START_TEST(test_load_bad_abi)
{
	load_fails(testmod_dir(), "testabi", "testabi", "ABI", "ABI 99.");
}
END_TEST

START_TEST(test_load_no_symbol)
{
	load_fails(testmod_dir(), "testnosym", "testnosym", "poplar_module",
		   "not found");
}
END_TEST

START_TEST(test_load_missing)
{
	load_fails(testmod_dir(), "no-such-module", "no-such-module",
		   "cannot load module", "no-such-module.so");
}
END_TEST

START_TEST(test_load_not_elf)
{
	const char *tmp = getenv("TMPDIR");
	char *dir = NULL, *path;
	FILE *f;

	ck_assert_int_ge(asprintf(&dir, "%s/poplar-loader-XXXXXX",
				  tmp != NULL && *tmp ? tmp : P_tmpdir), 0);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = mod_path(dir, "x");
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("this is not a shared object\n", f);
	fclose(f);
	load_fails(dir, "x", "x", "cannot load module", NULL);
	unlink(path);
	rmdir(dir);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_load_name_mismatch)
{
	load_fails(testmod_dir(), "testgood", "other", "'testgood'",
		   "'other'");
}
END_TEST

/* Init. */

START_TEST(test_init_good)
{
	struct config *cfg = config_for(testmod_dir(), "testgood", "");
	struct loaded_module *m = load(testmod_dir(), "testgood", "testgood");

	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(module_init(m, config_module(cfg, "testgood"), err,
				     sizeof(err)), 0);
	ck_assert(m->initialised);
	module_unload(&m);
	config_free(&cfg);
}
END_TEST

START_TEST(test_init_fails)
{
	struct loaded_module *m = load(testmod_dir(), "testinitfail",
				       "testinitfail");
	char *path = mod_path(testmod_dir(), "testinitfail");
	char *want = NULL;

	ck_assert_msg(m != NULL, "%s", err);
	ck_assert_int_eq(module_init(m, NULL, err, sizeof(err)), -1);
	ck_assert(!m->initialised);
	ck_assert_int_ge(asprintf(&want, "%s: init failed: init failed on "
				  "purpose", path), 0);
	ck_assert_str_eq(err, want);
	module_unload(&m);
	free(want);
	free(path);
}
END_TEST

START_TEST(test_init_item_error)
{
	struct config *cfg = config_for(testmod_dir(), "testgood",
					"fail = 1\n");
	struct loaded_module *m = load(testmod_dir(), "testgood", "testgood");

	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(module_init(m, config_module(cfg, "testgood"), err,
				     sizeof(err)), -1);
	ck_assert_str_eq(err, "t.conf:7: module testgood: asked to fail");
	ck_assert(!m->initialised);
	module_unload(&m);
	config_free(&cfg);
}
END_TEST

START_TEST(test_init_err_truncated)
{
	/* a small error buffer is cut, not overrun */
	struct loaded_module *m = load(testmod_dir(), "testinitfail",
				       "testinitfail");
	char small[24];

	ck_assert_ptr_nonnull(m);
	memset(small, '#', sizeof(small));
	ck_assert_int_eq(module_init(m, NULL, small, 16), -1);
	ck_assert_uint_eq(strlen(small), 15);
	for (size_t i = 16; i < sizeof(small); i++)
		ck_assert_int_eq(small[i], '#');
	module_unload(&m);
}
END_TEST

START_TEST(test_pass_backend_userdb)
{
	struct config *cfg = config_for(module_build_dir(), "pass",
					"backend = userdb\n");
	struct loaded_module *m = load(module_build_dir(), "pass", "pass");

	ck_assert_msg(m != NULL, "%s", err);
	ck_assert_int_eq(module_init(m, config_module(cfg, "pass"), err,
				     sizeof(err)), 0);
	ck_assert(m->initialised);
	ck_assert_ptr_nonnull(m->mod);
	module_unload(&m);
	config_free(&cfg);
}
END_TEST

START_TEST(test_pass_backend_unknown)
{
	struct config *cfg = config_for(module_build_dir(), "pass",
					"\nbackend = ldap\n");
	struct loaded_module *m = load(module_build_dir(), "pass", "pass");

	ck_assert_msg(m != NULL, "%s", err);
	ck_assert_int_eq(module_init(m, config_module(cfg, "pass"), err,
				     sizeof(err)), -1);
	ck_assert_msg(strncmp(err, "t.conf:8: module pass: ", 23) == 0,
		      "error does not name the item: %s", err);
	ck_assert_msg(strstr(err, "backend") != NULL, "%s", err);
	module_unload(&m);
	config_free(&cfg);
}
END_TEST

START_TEST(test_pass_unknown_key)
{
	struct config *cfg = config_for(module_build_dir(), "pass",
					"backend = userdb\ncolour = blue\n");
	struct loaded_module *m = load(module_build_dir(), "pass", "pass");

	ck_assert_msg(m != NULL, "%s", err);
	ck_assert_int_eq(module_init(m, config_module(cfg, "pass"), err,
				     sizeof(err)), -1);
	ck_assert_msg(strncmp(err, "t.conf:8: module pass: ", 23) == 0,
		      "error does not name the item: %s", err);
	ck_assert_msg(strstr(err, "unknown key") != NULL, "%s", err);
	module_unload(&m);
	config_free(&cfg);
}
END_TEST

START_TEST(test_pass_unknown_backend)
{
	struct config *cfg = config_for(module_build_dir(), "pass",
					"backend = carrier-pigeon\n");
	struct loaded_module *m = load(module_build_dir(), "pass", "pass");

	ck_assert_msg(m != NULL, "%s", err);
	ck_assert_int_eq(module_init(m, config_module(cfg, "pass"), err,
				     sizeof(err)), -1);
	ck_assert_msg(strncmp(err, "t.conf:7: module pass: ", 23) == 0,
		      "error does not name the item: %s", err);
	module_unload(&m);
	config_free(&cfg);
}
END_TEST

/* All modules of a configuration. */

START_TEST(test_load_all)
{
	struct config *cfg = config_for(testmod_dir(), "testgood", "");
	struct loaded_module *m;

	ck_assert_int_eq(modules_load_all(cfg, err, sizeof(err)), 0);
	ck_assert_uint_eq(modules_count(), 1);
	m = module_find("testgood");
	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_eq(module_at(0), m);
	ck_assert_ptr_null(module_at(1));
	ck_assert_ptr_null(module_find("pass"));
	ck_assert(m->initialised);
	modules_unload_all();
	ck_assert_uint_eq(modules_count(), 0);
	ck_assert_ptr_null(module_find("testgood"));
	config_free(&cfg);
}
END_TEST

START_TEST(test_load_all_init_fails)
{
	struct config *cfg = config_for(testmod_dir(), "testgood",
					"fail = yes\n");

	ck_assert_int_eq(modules_load_all(cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "t.conf:7: module testgood: asked to fail");
	modules_unload_all();
	ck_assert_uint_eq(modules_count(), 0);
	config_free(&cfg);
}
END_TEST

START_TEST(test_load_all_missing)
{
	struct config *cfg = config_for(testmod_dir(), "nothere", "");

	ck_assert_int_eq(modules_load_all(cfg, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "nothere.so") != NULL, "%s", err);
	modules_unload_all();
	config_free(&cfg);
}
END_TEST

/* --list-modules. */

/* The line of out that begins with "  NAME " (NULL if none). */
static char *
listed(char *out, const char *name)
{
	char prefix[64];
	char *p = out;

	snprintf(prefix, sizeof(prefix), "  %s ", name);
	while (p != NULL && *p != '\0') {
		char *nl = strchr(p, '\n');

		if (strncmp(p, prefix, strlen(prefix)) == 0) {
			size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
			char *line = strndup(p, n);

			ck_assert_ptr_nonnull(line);
			return line;
		}
		p = nl != NULL ? nl + 1 : NULL;
	}
	return NULL;
}

START_TEST(test_list)
{
	char *out = NULL, *line, *head = NULL, abi[32];
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(modules_list(testmod_dir(), f), 0);
	fclose(f);

	ck_assert_int_ge(asprintf(&head, "modules in %s:\n", testmod_dir()), 0);
	ck_assert_msg(strncmp(out, head, strlen(head)) == 0, "%s", out);
	free(head);

	snprintf(abi, sizeof(abi), "ABI %d.%d", POPLAR_MODULE_ABI_MAJOR,
		 POPLAR_MODULE_ABI_MINOR);
	line = listed(out, "testgood");
	ck_assert_msg(line != NULL, "%s", out);
	ck_assert_msg(strstr(line, abi) && strstr(line, "version 0") &&
		      strstr(line, "loader test module"), "%s", line);
	free(line);
	/* init is not run when listing */
	line = listed(out, "testinitfail");
	ck_assert_msg(line != NULL, "%s", out);
	ck_assert_msg(strstr(line, abi) != NULL, "%s", line);
	free(line);
	line = listed(out, "testabi");
	ck_assert_msg(line != NULL, "%s", out);
	ck_assert_msg(strstr(line, "unusable: ") && strstr(line, "ABI 99."),
		      "%s", line);
	free(line);
	line = listed(out, "testnosym");
	ck_assert_msg(line != NULL, "%s", out);
	ck_assert_msg(strstr(line, "unusable: ") &&
		      strstr(line, "'poplar_module' not found"), "%s", line);
	free(line);
	/* a TLS part, but not under the part's file name: no module */
	line = listed(out, "testtlsabi");
	ck_assert_msg(line != NULL, "%s", out);
	ck_assert_msg(strstr(line, "unusable: ") &&
		      strstr(line, "'poplar_module' not found"), "%s", line);
	free(line);
	/* the commands of the usable ones, and only *.so files listed */
	ck_assert_msg(strstr(out, "commands: XTEST XLOGIN\n") != NULL, "%s",
		      out);
	ck_assert_ptr_null(strstr(out, ".la"));
	ck_assert_ptr_null(strstr(out, ".o "));
	{
		/* 1 heading + 2 lines per usable module + 1 per unusable */
		int lines = 0;

		for (char *p = out; *p; p++)
			lines += *p == '\n';
		ck_assert_int_eq(lines, 1 + 2 + 2 + 1 + 1 + 1);
	}
	free(out);
}
END_TEST

START_TEST(test_list_bad_dir)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	ck_assert_int_eq(modules_list("/nonexistent/poplar-modules", f), -1);
	fclose(f);
	free(out);
}
END_TEST

START_TEST(test_host_services)
{
	ck_assert_uint_eq(poplar_host_services.abi_major,
			  POPLAR_MODULE_ABI_MAJOR);
	ck_assert_uint_eq(poplar_host_services.abi_minor,
			  POPLAR_MODULE_ABI_MINOR);
	ck_assert_uint_eq(poplar_host_services.size,
			  sizeof(struct poplar_host));
	ck_assert_ptr_nonnull(poplar_host_services.log);
	ck_assert_ptr_nonnull(poplar_host_services.send_line);
	ck_assert_ptr_nonnull(poplar_host_services.read_line);
	ck_assert_ptr_nonnull(poplar_host_services.verify_password);
	ck_assert_int_eq(poplar_host_services.secure_compare("ab", "ab", 2), 0);
	ck_assert_int_ne(poplar_host_services.secure_compare("ab", "ac", 2), 0);
}
END_TEST

static Suite *
loader_suite(void)
{
	Suite *s = suite_create("loader");
	TCase *tc;

	tc = tcase_create("load");
	tcase_add_test(tc, test_load_good);
	tcase_add_test(tc, test_load_any_name);
	tcase_add_test(tc, test_load_bad_abi);
	tcase_add_test(tc, test_load_no_symbol);
	tcase_add_test(tc, test_load_missing);
	tcase_add_test(tc, test_load_not_elf);
	tcase_add_test(tc, test_load_name_mismatch);
	suite_add_tcase(s, tc);

	tc = tcase_create("init");
	tcase_add_test(tc, test_init_good);
	tcase_add_test(tc, test_init_fails);
	tcase_add_test(tc, test_init_item_error);
	tcase_add_test(tc, test_init_err_truncated);
	tcase_add_test(tc, test_pass_backend_userdb);
	tcase_add_test(tc, test_pass_backend_unknown);
	tcase_add_test(tc, test_pass_unknown_key);
	tcase_add_test(tc, test_pass_unknown_backend);
	suite_add_tcase(s, tc);

	tc = tcase_create("load_all");
	tcase_add_test(tc, test_load_all);
	tcase_add_test(tc, test_load_all_init_fails);
	tcase_add_test(tc, test_load_all_missing);
	suite_add_tcase(s, tc);

	tc = tcase_create("list");
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_list_bad_dir);
	tcase_add_test(tc, test_host_services);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(loader_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
