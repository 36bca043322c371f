/* apop_core.h: the parts of APOP (RFC 1939 section 7) that need no
 * session: the greeting timestamp, the digest, and the secrets file.
 * Linked into the apop module and into its unit tests. */
#ifndef POPLAR_APOP_CORE_H
#define POPLAR_APOP_CORE_H

#include <stddef.h>
#include <sys/types.h>

/* Longest secret and secrets-file line we accept. */
#define APOP_SECRET_MAX 256
#define APOP_LINE_MAX 1024
/* "<" 32 hex "." pid "@" hostname ">" */
#define APOP_TIMESTAMP_MAX 320

/* A timestamp "<32 random hex digits.PID@hostname>", unique per
 * connection and unguessable (OpenSSL's CSPRNG).  0 or -1. */
int apop_timestamp(char *out, size_t size, const char *hostname, pid_t pid);

/* hex_out (33 bytes) = lowercase hex MD5(timestamp || secret).  0 or -1. */
int apop_digest_hex(const char *timestamp, const char *secret,
		    size_t secret_len, char hex_out[33]);

/* 1 when digest is 32 hex digits (either case) equal to the expected
 * digest, compared in constant time; 0 otherwise (also for a malformed
 * digest, after the same work). */
int apop_verify(const char *timestamp, const char *secret, size_t secret_len,
		const char *digest);

/* The secrets file must be a regular file, not readable or writable by
 * group or others, owned by root or by euid.  0, or -1 with *error_r. */
int apop_check_file(const char *path, uid_t euid, const char **error_r);

/* Find user's secret in the file (NAME:SECRET lines, '#' comments).
 * 1 found (secret NUL-terminated, *len_r set), 0 not found, -1 error
 * (*error_r).  Buffers that held secrets are wiped. */
int apop_lookup(const char *path, uid_t euid, const char *user, char *secret,
		size_t size, size_t *len_r, const char **error_r);

#endif
