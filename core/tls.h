/* tls.h: TLS for POP3 sessions (STLS, RFC 2595, and implicit TLS on 995,
 * RFC 8314).  The server context is made once in the master (certificate,
 * key, versions, ciphers) and inherited by every session.  The OpenSSL
 * code is a part of its own, loaded only when the configuration uses TLS
 * (tls_part.h). */
#ifndef POPLAR_TLS_H
#define POPLAR_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "config.h"

struct poplar_session;

/* When the configuration uses TLS (a listener with tls = starttls or
 * implicit, or [tls] with a certificate and key): load the TLS part from
 * module_dir and build the server context.  Checks that the part is there
 * and of this version, that the certificate and key can be read, match,
 * and that the certificate is valid now.  0 (also when TLS is not used),
 * or -1 with a message naming the file in err.  Warnings (a certificate
 * expiring within 30 days) go to warn (may be NULL).  Call it in the
 * master before any fork. */
int tls_init(const struct config *cfg, char *err, size_t errlen, FILE *warn);
/* Free the context and unload the part. */
void tls_deinit(void);
/* True when tls_init built a context: sessions can start TLS. */
bool tls_available(void);

/* --list-modules: load the TLS part at path and check it, without
 * building a context.  0 with a one-line description in out, or -1 with
 * "PATH: reason" in out. */
int tls_part_describe(const char *path, char *out, size_t outlen);

/* Run the server side of the handshake on the session's fds, within
 * timeout_ms, and switch the session's I/O to TLS.  0, or -1 with a
 * static reason (for the log).  The session's buffered input is dropped
 * first: bytes sent before the handshake never count as TLS data. */
int tls_start(struct poplar_session *s, int fd_in, int fd_out, int timeout_ms,
	      const char **error_r);

/* Protocol version and cipher of the session's TLS, for the log. */
const char *tls_session_version(const struct poplar_session *s);
const char *tls_session_cipher(const struct poplar_session *s);

/* The strength of the session's TLS in bits (the cipher's secret key
 * bits, what SASL calls the external SSF), or 0 without TLS. */
int tls_session_ssf(const struct poplar_session *s);

/* The identity in the client certificate that the handshake verified
 * against [tls] client_ca: the subject's commonName (the last one when
 * there are several).  NULL without TLS, without a verified certificate,
 * or when that commonName is empty, longer than 255 bytes or holds a
 * control character or NUL.  The string lives as long as the session's
 * TLS. */
const char *tls_session_peer_identity(const struct poplar_session *s);

#endif
