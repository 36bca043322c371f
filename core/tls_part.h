/* tls_part.h: the interface between the core's TLS layer (tls.c) and its
 * OpenSSL part (tls_openssl.c).
 *
 * The part is a shared object of its own, TLS_PART_FILE in module_dir,
 * exporting one symbol, TLS_PART_SYMBOL, a const struct tls_part.  The
 * master loads it at start-up, before any fork, and only when the
 * configuration uses TLS: a server without TLS never maps libssl, which
 * keeps every session's fork and exit cheap, and packagers ship the part
 * with the core.
 *
 * The part links OpenSSL and nothing of poplard: it gets its settings as
 * a struct and returns errors as text; the core keeps the session, the
 * line I/O and the log.  Each session is a process of its own, so the
 * part holds the server context in a static and a session has at most
 * one connection. */
#ifndef POPLAR_TLS_PART_H
#define POPLAR_TLS_PART_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#define TLS_PART_FILE "tls-openssl.so"
#define TLS_PART_SYMBOL "poplar_tls_part"
/* Bumped on any change of the structs below: the core refuses a part of
 * another version (they are built and installed together). */
#define TLS_PART_ABI 1

/* [tls] as written in the configuration; NULL when unset. */
struct tls_part_settings {
	const char *certificate;
	const char *key;
	const char *client_ca;
	const char *min_version;        /* "TLSv1.2" or "TLSv1.3" */
	const char *ciphers;
	const char *ciphersuites;
};

struct tls_part {
	unsigned int abi;               /* TLS_PART_ABI */
	const char *name;               /* "openssl" */
	/* The TLS library's name and version, for --list-modules. */
	const char *(*library)(void);

	/* Build the server context (certificate and key required).  0, or
	 * -1 with a message naming the file in err.  Warnings go to warn
	 * (may be NULL). */
	int (*init)(const struct tls_part_settings *set, char *err,
		    size_t errlen, FILE *warn);
	/* Free the context; no-op without one. */
	void (*deinit)(void);

	/* Run the server side of the handshake on fd_in/fd_out (made
	 * non-blocking) within timeout_ms.  0 with the connection in
	 * *conn_r, or -1 with a static reason in *error_r. */
	int (*start)(int fd_in, int fd_out, int timeout_ms, void **conn_r,
		     const char **error_r);
	/* The connection's transport, in the shape of struct pio_ops:
	 * read and write like read(2)/write(2), -1 with errno EAGAIN when
	 * the socket would block; pending: bytes already decrypted; close
	 * sends a close_notify and frees conn. */
	ssize_t (*read)(void *conn, void *buf, size_t len);
	ssize_t (*write)(void *conn, const void *buf, size_t len);
	size_t (*pending)(void *conn);
	void (*close)(void *conn);

	/* About an established connection; strings live as long as conn. */
	const char *(*version)(void *conn);
	const char *(*cipher)(void *conn);
	int (*ssf)(void *conn);
	/* The verified client certificate's commonName, or NULL. */
	const char *(*peer_identity)(void *conn);
};

#endif
