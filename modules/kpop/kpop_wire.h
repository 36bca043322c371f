/* kpop_wire.h: the framing of the KPOP pre-greeting exchange (MIT
 * krb5_sendauth/krb5_recvauth), as pure functions: classifying the first
 * bytes a client sends, length prefixes and their bounds.  No I/O and no
 * krb5 here, so that the rules can be unit-tested byte by byte.
 *
 * The exchange, client first:
 *   C: 00 00 00 13 "KRB5_SENDAUTH_V1.0\0"    sendauth version
 *   C: 00 00 00 09 "KPOPV1.0\0"              application version
 *   S: one byte: 0 ok, 1 bad sendauth version, 2 bad application version
 *   C: LEN AP-REQ
 *   S: 00 00 00 00 (or LEN KRB-ERROR, then close)
 *   S: LEN AP-REP                           (mutual authentication)
 * then plain POP3, greeting first.  Every length is 4 bytes, big-endian. */
#ifndef POPLAR_KPOP_WIRE_H
#define POPLAR_KPOP_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Sent with their terminating NUL, which the length counts. */
#define KPOP_SENDAUTH_VERSION "KRB5_SENDAUTH_V1.0"
#define KPOP_SENDAUTH_VERSION_LEN 19u
#define KPOP_APPL_VERSION "KPOPV1.0"
#define KPOP_APPL_VERSION_LEN 9u

/* Longest application version string read before answering "bad
 * application version": real ones are about ten bytes. */
#define KPOP_APPL_VERSION_MAX 64u
/* Longest AP-REQ accepted.  A ticket carrying a large Windows PAC is
 * around 12 KiB; 64 KiB leaves room and still bounds the allocation. */
#define KPOP_APREQ_MAX 65536u

/* Answers to the version messages (the byte the server sends). */
#define KPOP_RESPONSE_OK 0
#define KPOP_RESPONSE_BAD_SENDAUTH 1
#define KPOP_RESPONSE_BAD_APPL 2

/* What the first four bytes of a connection say about the client. */
enum kpop_first {
	KPOP_FIRST_SENDAUTH,    /* 00 00 00 13: a krb5 sendauth client */
	KPOP_FIRST_AUTH,        /* "AUTH": krb4 ("AUTHV0.1") or POP3 AUTH */
	KPOP_FIRST_POP3,        /* letters: a POP3 command (QUIT, CAPA...) */
	KPOP_FIRST_OVERSIZED,   /* a length above KPOP_APREQ_MAX */
	KPOP_FIRST_GARBAGE      /* anything else */
};

enum kpop_first kpop_classify_first(const unsigned char b[4]);
/* After KPOP_FIRST_AUTH: 1 when the next four bytes are "V0.1", the rest
 * of a Kerberos 4 sendauth version ("AUTHV0.1"). */
int kpop_is_krb4(const unsigned char next[4]);
/* A short text for the log: "krb5 sendauth", "plain POP3 client"... */
const char *kpop_first_describe(enum kpop_first f);

uint32_t kpop_get_len(const unsigned char b[4]);
void kpop_put_len(unsigned char b[4], uint32_t len);
/* 1 when the length in b is between 1 and max (and set *len_r), else 0. */
int kpop_len_ok(const unsigned char b[4], uint32_t max, uint32_t *len_r);

/* Copy n bytes for a log line: printable ASCII except '"' and '\', the
 * rest as '.'; at most outsize-1 bytes, always terminated. */
void kpop_printable(const unsigned char *in, size_t n, char *out,
		    size_t outsize);

#endif
