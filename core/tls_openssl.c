/* tls_openssl.c: the OpenSSL part of the core's TLS (tls_part.h): the
 * server context and the TLS transport of a session, built as
 * tls-openssl.so and loaded by tls.c only when the configuration uses
 * TLS.
 *
 * The context is built in the master as root (the key file is usually
 * root-only) and inherited by session processes.  A session's socket is
 * made non-blocking for TLS so that every wait goes through poll() with
 * a timeout: a client that stalls mid-handshake or mid-record cannot
 * hold a session forever.
 *
 * Only libc and OpenSSL are used here: this file links nothing of
 * poplard. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include "tls_part.h"

static SSL_CTX *server_ctx;

struct tls_conn {
	SSL *ssl;
	int fd_in, fd_out;
	/* The verified client certificate's identity, looked up once. */
	bool peer_looked_up;
	char peer_identity[256];
};

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *
ossl_library(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}

static void
ssl_error(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "unknown error");
	snprintf(err, errlen, "%s%s%s: %s", file ? file : "", file ? ": " : "",
		 what, buf);
	ERR_clear_error();
}

static int
ossl_init(const struct tls_part_settings *set, char *err, size_t errlen,
	  FILE *warn)
{
	SSL_CTX *ctx;
	X509 *cert;
	int min = TLS1_2_VERSION;

	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		ssl_error(err, errlen, "cannot create TLS context", NULL);
		return -1;
	}
	if (set->min_version != NULL &&
	    strcmp(set->min_version, "TLSv1.3") == 0)
		min = TLS1_3_VERSION;
	SSL_CTX_set_min_proto_version(ctx, min);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE |
			    SSL_OP_NO_COMPRESSION);
	/* One process per session: a session cache would never be hit. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);

	if (SSL_CTX_use_certificate_chain_file(ctx, set->certificate) != 1) {
		ssl_error(err, errlen, "cannot load certificate chain",
			  set->certificate);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, set->key, SSL_FILETYPE_PEM)
	    != 1) {
		ssl_error(err, errlen, "cannot load private key", set->key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "%s: private key does not match the "
			 "certificate %s", set->key, set->certificate);
		ERR_clear_error();
		goto fail;
	}
	cert = SSL_CTX_get0_certificate(ctx);
	if (cert != NULL) {
		if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
			snprintf(err, errlen, "%s: certificate has expired",
				 set->certificate);
			goto fail;
		}
		if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
			snprintf(err, errlen, "%s: certificate is not valid "
				 "yet", set->certificate);
			goto fail;
		}
		if (warn != NULL) {
			time_t soon = time(NULL) + 30 * 86400;

			if (X509_cmp_time(X509_get0_notAfter(cert), &soon) <= 0)
				fprintf(warn, "warning: %s: certificate "
					"expires within 30 days\n",
					set->certificate);
		}
	}
	if (set->ciphers != NULL &&
	    SSL_CTX_set_cipher_list(ctx, set->ciphers) != 1) {
		ssl_error(err, errlen, "invalid ciphers", NULL);
		goto fail;
	}
	if (set->ciphersuites != NULL &&
	    SSL_CTX_set_ciphersuites(ctx, set->ciphersuites) != 1) {
		ssl_error(err, errlen, "invalid ciphersuites", NULL);
		goto fail;
	}
	if (set->client_ca != NULL) {
		STACK_OF(X509_NAME) *names;

		if (SSL_CTX_load_verify_locations(ctx, set->client_ca,
						  NULL) != 1) {
			ssl_error(err, errlen, "cannot load client CA",
				  set->client_ca);
			goto fail;
		}
		names = SSL_load_client_CA_file(set->client_ca);
		if (names != NULL)
			SSL_CTX_set_client_CA_list(ctx, names);
		/* Ask for a certificate, accept sessions without one. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	SSL_CTX_free(server_ctx);
	server_ctx = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -1;
}

static void
ossl_deinit(void)
{
	SSL_CTX_free(server_ctx);
	server_ctx = NULL;
}

/* Wait for the direction OpenSSL asked for.  1 ready, 0 timeout, -1. */
static int
tls_wait(struct tls_conn *c, int ssl_err, int timeout_ms)
{
	struct pollfd pfd;
	int r;

	pfd.fd = ssl_err == SSL_ERROR_WANT_WRITE ? c->fd_out : c->fd_in;
	pfd.events = ssl_err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
	do {
		r = poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	return r;
}

static ssize_t
ossl_read(void *ctx, void *buf, size_t len)
{
	struct tls_conn *c = ctx;
	int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);

	if (n > 0)
		return n;
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		ERR_clear_error();
		errno = EIO;
		return -1;
	}
}

static ssize_t
ossl_write(void *ctx, const void *buf, size_t len)
{
	struct tls_conn *c = ctx;
	int n = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);

	if (n > 0)
		return n;
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	default:
		ERR_clear_error();
		errno = EPIPE;
		return -1;
	}
}

static size_t
ossl_pending(void *ctx)
{
	struct tls_conn *c = ctx;

	return (size_t)SSL_pending(c->ssl);
}

static void
ossl_close(void *ctx)
{
	struct tls_conn *c = ctx;

	/* A close_notify, without waiting for the peer's. */
	SSL_shutdown(c->ssl);
	SSL_free(c->ssl);
	free(c);
}

static int
ossl_start(int fd_in, int fd_out, int timeout_ms, void **conn_r,
	   const char **error_r)
{
	struct tls_conn *c;
	uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;

	*conn_r = NULL;
	*error_r = NULL;
	if (server_ctx == NULL) {
		*error_r = "TLS is not configured";
		return -1;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	c->fd_in = fd_in;
	c->fd_out = fd_out;
	c->ssl = SSL_new(server_ctx);
	if (c->ssl == NULL || SSL_set_rfd(c->ssl, fd_in) != 1 ||
	    SSL_set_wfd(c->ssl, fd_out) != 1) {
		*error_r = "cannot set up TLS";
		goto fail;
	}
	fcntl(fd_in, F_SETFL, fcntl(fd_in, F_GETFL) | O_NONBLOCK);
	if (fd_out != fd_in)
		fcntl(fd_out, F_SETFL, fcntl(fd_out, F_GETFL) | O_NONBLOCK);
	for (;;) {
		int r = SSL_accept(c->ssl), e;
		uint64_t now;

		if (r == 1)
			break;
		e = SSL_get_error(c->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			unsigned long le = ERR_get_error();
			static char why[200];

			if (le != 0)
				snprintf(why, sizeof(why), "handshake failed: "
					 "%s", ERR_reason_error_string(le));
			else
				snprintf(why, sizeof(why), "handshake failed: "
					 "connection closed");
			ERR_clear_error();
			*error_r = why;
			goto fail;
		}
		now = mono_ms();
		if (now >= deadline ||
		    tls_wait(c, e, (int)(deadline - now)) <= 0) {
			*error_r = "handshake timed out";
			goto fail;
		}
	}
	*conn_r = c;
	return 0;
fail:
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	free(c);
	return -1;
}

static const char *
ossl_version(void *conn)
{
	struct tls_conn *c = conn;

	return SSL_get_version(c->ssl);
}

static const char *
ossl_cipher(void *conn)
{
	struct tls_conn *c = conn;

	return SSL_get_cipher_name(c->ssl);
}

static int
ossl_ssf(void *conn)
{
	struct tls_conn *c = conn;
	int bits = SSL_get_cipher_bits(c->ssl, NULL);

	return bits > 0 ? bits : 0;
}

/* The last commonName of the certificate's subject into out, or "". */
static void
cert_common_name(X509 *cert, char *out, size_t size)
{
	X509_NAME *subject = X509_get_subject_name(cert);
	int i = -1, last = -1;
	unsigned char *utf8 = NULL;
	int len;

	out[0] = '\0';
	if (subject == NULL)
		return;
	/* Bounded by the number of entries in the name. */
	while ((i = X509_NAME_get_index_by_NID(subject, NID_commonName, i))
	       >= 0)
		last = i;
	if (last < 0)
		return;
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
				  X509_NAME_get_entry(subject, last)));
	if (len <= 0 || (size_t)len >= size) {
		OPENSSL_free(utf8);
		return;
	}
	for (int k = 0; k < len; k++)
		if (utf8[k] < 0x20 || utf8[k] == 0x7f) {
			OPENSSL_free(utf8);
			return;
		}
	memcpy(out, utf8, (size_t)len);
	out[len] = '\0';
	OPENSSL_free(utf8);
}

static const char *
ossl_peer_identity(void *conn)
{
	struct tls_conn *c = conn;

	if (!c->peer_looked_up) {
		X509 *cert = SSL_get_peer_certificate(c->ssl);

		c->peer_looked_up = true;
		c->peer_identity[0] = '\0';
		if (cert != NULL && SSL_get_verify_result(c->ssl) == X509_V_OK)
			cert_common_name(cert, c->peer_identity,
					 sizeof(c->peer_identity));
		X509_free(cert);
	}
	return c->peer_identity[0] != '\0' ? c->peer_identity : NULL;
}

const struct tls_part poplar_tls_part = {
	.abi = TLS_PART_ABI,
	.name = "openssl",
	.library = ossl_library,
	.init = ossl_init,
	.deinit = ossl_deinit,
	.start = ossl_start,
	.read = ossl_read,
	.write = ossl_write,
	.pending = ossl_pending,
	.close = ossl_close,
	.version = ossl_version,
	.cipher = ossl_cipher,
	.ssf = ossl_ssf,
	.peer_identity = ossl_peer_identity,
};
