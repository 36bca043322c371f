/* tls.c: TLS for sessions, through the OpenSSL part (tls_part.h).
 *
 * OpenSSL's TLS code lives in a shared object of its own, TLS_PART_FILE
 * in module_dir.  tls_init loads it, in the master as root, before any
 * fork and before privileges are dropped, and only when the
 * configuration uses TLS: a server without TLS never maps libssl, whose
 * relocated data would otherwise be copied on every session's fork and
 * torn down on every session's exit.  A part that is missing or of
 * another version stops start-up (and poplard -t) with its file named.
 *
 * This file keeps what belongs to the session: dropping input buffered
 * before the handshake, switching the session's line I/O to the part's
 * transport, and the TLS flag. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include "pio.h"
#include "session.h"
#include "tls.h"
#include "tls_part.h"
#include "util.h"

/* The loaded part (NULL without TLS) and whether its context is built. */
static void *part_handle;
static const struct tls_part *part;
static bool context_ready;

/* The part's transport, filled when the part is loaded. */
static struct pio_ops tls_ops;

/* The connection of the current session (one session per process). */
static void *current;

/* The configuration uses TLS: a listener has tls = starttls or implicit
 * (config_load has checked that [tls] then has a certificate and key),
 * or [tls] names a certificate and a key, which poplard -t checks even
 * when no listener uses them.  A certificate without a key builds no
 * context and loads nothing. */
static bool
tls_wanted(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].tls != TLS_MODE_NONE)
			return true;
	return cfg->tls_certificate != NULL && cfg->tls_key != NULL;
}

/* dlopen path and check its descriptor.  0, or -1 with "PATH: reason". */
static int
part_open(const char *path, void **handle_r, const struct tls_part **part_r,
	  char *err, size_t errlen)
{
	const struct tls_part *p;
	void *h, *sym;

	*handle_r = NULL;
	*part_r = NULL;
	h = dl_open_symbol(path, TLS_PART_SYMBOL, "the TLS part",
			   "a TLS part", &sym, err, errlen);
	if (h == NULL)
		return -1;
	p = sym;
	if (p->abi != TLS_PART_ABI) {
		snprintf(err, errlen, "%s: TLS part ABI %u is not supported "
			 "(poplard has TLS part ABI %d): install the part "
			 "built with this poplard", path, p->abi, TLS_PART_ABI);
		dlclose(h);
		return -1;
	}
	*handle_r = h;
	*part_r = p;
	return 0;
}

static void
tls_close(void *conn)
{
	if (current == conn)
		current = NULL;
	part->close(conn);
}

int
tls_init(const struct config *cfg, char *err, size_t errlen, FILE *warn)
{
	struct tls_part_settings set;
	char path[4096];

	if (!tls_wanted(cfg))
		return 0;
	if (cfg->tls_certificate == NULL || cfg->tls_key == NULL) {
		/* config_load refuses this; said here for other callers. */
		snprintf(err, errlen, "a listener uses TLS but [tls] has no "
			 "certificate and key");
		return -1;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", cfg->module_dir,
			     TLS_PART_FILE) >= sizeof(path)) {
		snprintf(err, errlen, "%s: module_dir too long for the TLS "
			 "part", cfg->module_dir);
		return -1;
	}
	if (part_open(path, &part_handle, &part, err, errlen) < 0)
		return -1;
	tls_ops.read = part->read;
	tls_ops.write = part->write;
	tls_ops.pending = part->pending;
	tls_ops.close = tls_close;

	set.certificate = cfg->tls_certificate;
	set.key = cfg->tls_key;
	set.client_ca = cfg->tls_client_ca;
	set.min_version = cfg->tls_min_version;
	set.ciphers = cfg->tls_ciphers;
	set.ciphersuites = cfg->tls_ciphersuites;
	if (part->init(&set, err, errlen, warn) < 0)
		return -1;
	context_ready = true;
	return 0;
}

void
tls_deinit(void)
{
	if (part != NULL)
		part->deinit();
	if (part_handle != NULL)
		dlclose(part_handle);
	part = NULL;
	part_handle = NULL;
	context_ready = false;
	current = NULL;
}

bool
tls_available(void)
{
	return context_ready;
}

int
tls_part_describe(const char *path, char *out, size_t outlen)
{
	const struct tls_part *p;
	void *h;

	if (part_open(path, &h, &p, out, outlen) < 0)
		return -1;
	snprintf(out, outlen, "part of the core: TLS (part ABI %u, %s)",
		 p->abi, p->library());
	dlclose(h);
	return 0;
}

int
tls_start(struct poplar_session *s, int fd_in, int fd_out, int timeout_ms,
	  const char **error_r)
{
	void *conn;

	*error_r = NULL;
	if (!context_ready) {
		*error_r = "TLS is not configured";
		return -1;
	}
	/* Anything the client sent before the handshake is discarded: it
	 * must never be executed inside TLS (STARTTLS injection). */
	pio_discard_input(s->io);
	if (part->start(fd_in, fd_out, timeout_ms, &conn, error_r) < 0)
		return -1;
	current = conn;
	pio_set_transport(s->io, &tls_ops, conn);
	s->flags |= SESSION_FLAG_TLS;
	return 0;
}

const char *
tls_session_version(const struct poplar_session *s)
{
	if (!(s->flags & SESSION_FLAG_TLS) || current == NULL)
		return "-";
	return part->version(current);
}

const char *
tls_session_cipher(const struct poplar_session *s)
{
	if (!(s->flags & SESSION_FLAG_TLS) || current == NULL)
		return "-";
	return part->cipher(current);
}

int
tls_session_ssf(const struct poplar_session *s)
{
	if (!(s->flags & SESSION_FLAG_TLS) || current == NULL)
		return 0;
	return part->ssf(current);
}

const char *
tls_session_peer_identity(const struct poplar_session *s)
{
	if (!(s->flags & SESSION_FLAG_TLS) || current == NULL)
		return NULL;
	return part->peer_identity(current);
}
