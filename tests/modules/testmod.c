/* testmod.c: a module for the loader tests, built four ways (never
 * installed): good, wrong ABI, missing descriptor symbol, failing init.
 * The good one offers XTEST (replies +OK) and XLOGIN NAME (logs in as
 * NAME without a secret: test use only). */
#include <stdlib.h>
#include <string.h>
#include "poplar-module.h"

#ifndef TESTMOD_NAME
#define TESTMOD_NAME "testgood"
#endif

static int
t_init(const struct poplar_host *host, const struct poplar_config_item *items,
       size_t nitems, void **mod_r, const struct poplar_config_item **item_r,
       const char **error_r)
{
	(void)host;
#ifdef TESTMOD_INIT_FAIL
	(void)items;
	(void)nitems;
	(void)mod_r;
	(void)item_r;
	*error_r = "init failed on purpose";
	return -1;
#else
	for (size_t i = 0; i < nitems; i++) {
		if (strcmp(items[i].key, "fail") == 0) {
			*item_r = &items[i];
			*error_r = "asked to fail";
			return -1;
		}
	}
	*mod_r = NULL;
	return 0;
#endif
}

static void
t_capa(void *mod, void *sess, struct poplar_session *s,
       void (*emit)(struct poplar_session *s, const char *line))
{
	(void)mod;
	(void)sess;
	emit(s, "X-TESTGOOD");
}

static enum poplar_outcome
t_xtest(struct poplar_session *s, void *sess, unsigned int argc, char **argv,
	struct poplar_outcome_info *out)
{
	(void)s;
	(void)sess;
	(void)argc;
	(void)argv;
	out->message = "test module here";
	return POPLAR_OK;
}

static enum poplar_outcome
t_xlogin(struct poplar_session *s, void *sess, unsigned int argc, char **argv,
	 struct poplar_outcome_info *out)
{
	(void)s;
	(void)sess;
	(void)argc;
	if (strcmp(argv[0], "fail") == 0) {
		strcpy(out->user, "fail");
		out->reason = "asked to fail";
		return POPLAR_LOGIN_FAIL;
	}
	if (strlen(argv[0]) > POPLAR_USER_MAX)
		return POPLAR_ERR;
	strcpy(out->user, argv[0]);
	out->method = TESTMOD_NAME;
	return POPLAR_LOGIN;
}

static const struct poplar_command t_commands[] = {
	{ "XTEST", 0, 0, 0, t_xtest },
	{ "XLOGIN", 1, 1, 0, t_xlogin },
	{ NULL, 0, 0, 0, NULL }
};

#ifdef TESTMOD_NO_SYMBOL
#define DESCRIPTOR poplar_module_misspelt
#else
#define DESCRIPTOR poplar_module
#endif

const struct poplar_module DESCRIPTOR = {
#ifdef TESTMOD_BAD_ABI
	.abi_major = POPLAR_MODULE_ABI_MAJOR + 98,
#else
	.abi_major = POPLAR_MODULE_ABI_MAJOR,
#endif
	.abi_minor = POPLAR_MODULE_ABI_MINOR,
	.name = TESTMOD_NAME,
	.version = "0",
	.description = "loader test module",
	.init = t_init,
	.capa = t_capa,
	.commands = t_commands,
};
