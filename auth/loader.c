/* loader.c: the module host: dlopen, ABI check, init, and the services
 * lent to modules (struct poplar_host).
 *
 * Runs in the master as root at start-up (loading, init) and in session
 * processes (the services). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "loader.h"
#include "log.h"
#include "session.h"
#include "tls.h"
#include "tls_part.h"
#include "userdb.h"
#include "util.h"

static struct loaded_module **loaded;
static size_t nloaded;
static const struct config *host_cfg;

/* ---- host services ------------------------------------------------------ */

static void
host_log(enum poplar_log_level level, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_msg(prio[level <= POPLAR_LOG_DEBUG ? level : POPLAR_LOG_DEBUG],
		"%s", line);
}

static const char *
host_hostname(void)
{
	return host_cfg != NULL ? host_cfg->hostname : "localhost";
}

static int
host_send_line(struct poplar_session *s, const char *line)
{
	if (pio_write(s->io, line, strlen(line)) < 0 ||
	    pio_write(s->io, "\r\n", 2) < 0)
		return -1;
	return 0;
}

static long
host_read_line(struct poplar_session *s, char *buf, size_t size)
{
	size_t len;

	if (pio_read_line(s->io, buf, size, &len,
			  (int)s->cfg->idle_timeout * 1000) != PIO_LINE)
		return -1;
	return (long)len;
}

static int
host_read_exact(struct poplar_session *s, void *buf, size_t len,
		int timeout_ms)
{
	return pio_read_exact(s->io, buf, len, timeout_ms);
}

static int
host_write_all(struct poplar_session *s, const void *buf, size_t len)
{
	if (pio_write(s->io, buf, len) < 0)
		return -1;
	return pio_flush(s->io);
}

static const char *
host_peer(struct poplar_session *s)
{
	return s->peer;
}

static const char *
host_listener(struct poplar_session *s)
{
	return s->listener->name;
}

static int
host_tls_active(struct poplar_session *s)
{
	return (s->flags & SESSION_FLAG_TLS) != 0;
}

static int
host_plaintext_allowed(struct poplar_session *s)
{
	return plaintext_allowed(s);
}

static const char *
host_greeting_token(struct poplar_session *s)
{
	return s->greeting_token;
}

static int
host_tls_ssf(struct poplar_session *s)
{
	return tls_session_ssf(s);
}

static const char *
host_tls_peer_identity(struct poplar_session *s)
{
	return tls_session_peer_identity(s);
}

const struct poplar_host poplar_host_services = {
	.abi_major = POPLAR_MODULE_ABI_MAJOR,
	.abi_minor = POPLAR_MODULE_ABI_MINOR,
	.size = sizeof(struct poplar_host),
	.log = host_log,
	.hostname = host_hostname,
	.send_line = host_send_line,
	.read_line = host_read_line,
	.read_exact = host_read_exact,
	.write_all = host_write_all,
	.peer_address = host_peer,
	.listener_name = host_listener,
	.tls_active = host_tls_active,
	.plaintext_allowed = host_plaintext_allowed,
	.verify_password = userdb_verify_password,
	.secure_compare = secure_compare,
	.wipe = secure_wipe,
	.greeting_token = host_greeting_token,
	.tls_ssf = host_tls_ssf,
	.tls_peer_identity = host_tls_peer_identity,
};

/* ---- loading -------------------------------------------------------------- */

struct loaded_module *
module_load_file(const char *path, const char *name, char *err, size_t errlen)
{
	struct loaded_module *m;
	const struct poplar_module *d;
	void *h, *sym;

	h = dl_open_symbol(path, POPLAR_MODULE_SYMBOL, "module",
			   "a Poplar module", &sym, err, errlen);
	if (h == NULL)
		return NULL;
	d = sym;
	if (d->abi_major != POPLAR_MODULE_ABI_MAJOR ||
	    d->abi_minor > POPLAR_MODULE_ABI_MINOR) {
		snprintf(err, errlen, "%s: module ABI %u.%u is not supported "
			 "(poplard has ABI %d.%d)", path, d->abi_major,
			 d->abi_minor, POPLAR_MODULE_ABI_MAJOR,
			 POPLAR_MODULE_ABI_MINOR);
		dlclose(h);
		return NULL;
	}
	if (d->name == NULL || (name != NULL && strcmp(d->name, name) != 0)) {
		snprintf(err, errlen, "%s: module calls itself '%s', expected "
			 "'%s'", path, d->name ? d->name : "(null)",
			 name ? name : "?");
		dlclose(h);
		return NULL;
	}
	if (d->init == NULL) {
		snprintf(err, errlen, "%s: module has no init function", path);
		dlclose(h);
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	m->name = xstrdup(d->name);
	m->path = xstrdup(path);
	m->handle = h;
	m->desc = d;
	return m;
}

int
module_init(struct loaded_module *m, const struct module_config *mc,
	    char *err, size_t errlen)
{
	const struct poplar_config_item *item = NULL;
	const char *error = NULL;

	if (m->desc->init(&poplar_host_services, mc ? mc->items : NULL,
			  mc ? mc->nitems : 0, &m->mod, &item, &error) < 0) {
		if (item != NULL)
			snprintf(err, errlen, "%s:%u: module %s: %s", item->file,
				 item->line, m->name,
				 error ? error : "init failed");
		else
			snprintf(err, errlen, "%s: init failed: %s", m->path,
				 error ? error : "no reason given");
		return -1;
	}
	m->initialised = true;
	return 0;
}

void
module_unload(struct loaded_module **mp)
{
	struct loaded_module *m = *mp;

	if (m == NULL)
		return;
	if (m->initialised && m->desc->fini != NULL)
		m->desc->fini(m->mod);
	dlclose(m->handle);
	free(m->name);
	free(m->path);
	free(m);
	*mp = NULL;
}

/* A module that speaks before the greeting (a connect hook: KPOP's
 * sendauth exchange) belongs on a listener with protocol = kpop, and
 * such a listener offers nothing else: a client of the other kind would
 * get an exchange it does not expect. */
static int
listeners_check(const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_config *l = &cfg->listeners[i];
		bool kpop = l->protocol == PROTOCOL_KPOP;

		for (size_t j = 0; j < l->nauth; j++) {
			const struct loaded_module *m = module_find(l->auth[j]);

			if (m == NULL || (m->desc->connect != NULL) == kpop)
				continue;
			snprintf(err, errlen, "%s:%u: listener '%s' %s '%s', "
				 "which %s", l->file, l->auth_line, l->name,
				 kpop ? "has protocol = kpop but offers"
				      : "offers", l->auth[j],
				 kpop ? "does not authenticate before the "
					"greeting: offer only kpop there"
				      : "authenticates before the greeting: "
					"only a listener with protocol = kpop "
					"may offer it");
			return -1;
		}
	}
	return 0;
}

int
modules_load_all(const struct config *cfg, char *err, size_t errlen)
{
	host_cfg = cfg;
	for (size_t i = 0; i < cfg->nmodules; i++) {
		const struct module_config *mc = &cfg->modules[i];
		struct loaded_module *m;
		char path[4096];

		if ((size_t)snprintf(path, sizeof(path), "%s/%s.so",
				     cfg->module_dir, mc->name) >= sizeof(path)) {
			snprintf(err, errlen, "%s:%u: module path too long",
				 mc->file, mc->line);
			return -1;
		}
		m = module_load_file(path, mc->name, err, errlen);
		if (m == NULL)
			return -1;
		loaded = xrealloc(loaded, nloaded + 1, sizeof(*loaded));
		loaded[nloaded++] = m;
		if (module_init(m, mc, err, errlen) < 0)
			return -1;
	}
	return listeners_check(cfg, err, errlen);
}

void
modules_unload_all(void)
{
	for (size_t i = nloaded; i > 0; i--)
		module_unload(&loaded[i - 1]);
	free(loaded);
	loaded = NULL;
	nloaded = 0;
}

struct loaded_module *
module_find(const char *name)
{
	for (size_t i = 0; i < nloaded; i++)
		if (strcmp(loaded[i]->name, name) == 0)
			return loaded[i];
	return NULL;
}

size_t
modules_count(void)
{
	return nloaded;
}

struct loaded_module *
module_at(size_t i)
{
	return i < nloaded ? loaded[i] : NULL;
}

int
modules_check(FILE *out, int verbose, size_t *nchecked_r)
{
	int rc = 0;

	*nchecked_r = 0;
	for (size_t i = 0; i < nloaded; i++) {
		const struct poplar_module *d = loaded[i]->desc;

		/* check exists from ABI 1.1 on; before, the slot was reserved. */
		if (d->abi_minor < 1 || d->check == NULL)
			continue;
		(*nchecked_r)++;
		if (verbose)
			fprintf(out, "module %s:\n", loaded[i]->name);
		if (d->check(loaded[i]->mod, out, verbose) < 0)
			rc = -1;
	}
	return rc;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
modules_list(const char *dir, FILE *out)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;

	if (d == NULL) {
		fprintf(stderr, "poplard: %s: cannot open module directory\n",
			dir);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len > 3 && strcmp(de->d_name + len - 3, ".so") == 0 &&
		    de->d_name[0] != '.') {
			names = xrealloc(names, n + 1, sizeof(*names));
			names[n++] = xstrdup(de->d_name);
		}
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_str);
	fprintf(out, "modules in %s:\n", dir);
	for (size_t i = 0; i < n; i++) {
		char path[4096], err[1024], name[256];
		struct loaded_module *m;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		snprintf(name, sizeof(name), "%.*s",
			 (int)(strlen(names[i]) - 3), names[i]);
		if (strcmp(names[i], TLS_PART_FILE) == 0) {
			/* The core's TLS part: loaded when TLS is used. */
			if (tls_part_describe(path, err, sizeof(err)) < 0)
				fprintf(out, "  %-10s unusable: %s\n", name, err);
			else
				fprintf(out, "  %-10s %s\n", name, err);
			free(names[i]);
			continue;
		}
		if (strchr(name, '-') != NULL) {
			/* MODULE-PART.so: loaded by MODULE, not a module. */
			fprintf(out, "  %-10s part of module %.*s\n", name,
				(int)strcspn(name, "-"), name);
			free(names[i]);
			continue;
		}
		m = module_load_file(path, name, err, sizeof(err));
		if (m == NULL) {
			fprintf(out, "  %-10s unusable: %s\n", name, err);
		} else {
			const struct poplar_module *md = m->desc;

			fprintf(out, "  %-10s ABI %u.%u  version %s  %s\n",
				md->name, md->abi_major, md->abi_minor,
				md->version ? md->version : "?",
				md->description ? md->description : "");
			fprintf(out, "  %-10s commands:", "");
			for (const struct poplar_command *c = md->commands;
			     c != NULL && c->name != NULL; c++)
				fprintf(out, " %s%s", c->name,
					c->flags & POPLAR_CMD_PLAINTEXT
					? "(plaintext secret)" : "");
			fprintf(out, "%s%s\n",
				md->connect ? " [pre-greeting exchange]" : "",
				md->greeting ? " [greeting token]" : "");
			module_unload(&m);
		}
		free(names[i]);
	}
	free(names);
	return 0;
}
