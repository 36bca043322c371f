/* loader.h: the module host.  Loads the modules (NAME.so) named in the
 * configuration with dlopen, checks their ABI, runs init, and routes
 * AUTHORIZATION-state commands to them. */
#ifndef POPLAR_LOADER_H
#define POPLAR_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "config.h"
#include "../auth/poplar-module.h"

struct loaded_module {
	char *name;
	char *path;
	void *handle;                   /* dlopen */
	const struct poplar_module *desc;
	void *mod;                      /* from init */
	bool initialised;
};

/* The host services handed to modules (filled by the core). */
extern const struct poplar_host poplar_host_services;

/* Load one module file and check its descriptor (no init).  Returns NULL
 * and writes "PATH: reason" into err. */
struct loaded_module *module_load_file(const char *path, const char *name,
				       char *err, size_t errlen);
/* Run init with the module's section.  0, or -1 with an error line. */
int module_init(struct loaded_module *m, const struct module_config *mc,
		char *err, size_t errlen);
void module_unload(struct loaded_module **m);

/* Load every module of cfg->modules from cfg->module_dir and init it;
 * check that every listener's auth names a loaded module. */
int modules_load_all(const struct config *cfg, char *err, size_t errlen);
void modules_unload_all(void);
/* The loaded module called name, or NULL. */
struct loaded_module *module_find(const char *name);
size_t modules_count(void);
struct loaded_module *module_at(size_t i);

/* Run the check callback of every loaded module that has one (-t with
 * verbose = 0, --check-kerberos with verbose = 1).  Returns 0, or -1
 * when a module reported a problem that will make logins fail;
 * *nchecked_r is the number of modules checked. */
int modules_check(FILE *out, int verbose, size_t *nchecked_r);

/* --list-modules: every *.so in dir, with its ABI and what it offers. */
int modules_list(const char *dir, FILE *out);

#endif
