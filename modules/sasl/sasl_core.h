/* sasl_core.h: the parts of POP3 AUTH (RFC 5034) that need neither a
 * session nor Cyrus SASL: strict base64, the one mechanism-list filter,
 * what --policy says of each mechanism, and the identity-to-user rule.
 * Linked into the sasl module and into its unit tests. */
#ifndef POPLAR_SASL_CORE_H
#define POPLAR_SASL_CORE_H

#include <stdbool.h>
#include <stddef.h>

/* Longest client line inside an AUTH exchange, in bytes of base64 (CRLF
 * not counted).  GSSAPI tokens are the largest: a Kerberos ticket with a
 * large authorization-data field is a few KiB; 16 KiB of base64 is 12 KiB
 * of token.  A longer line ends the session. */
#define SASL_LINE_MAX (16 * 1024)
/* Decoded size of the longest line. */
#define SASL_DATA_MAX (SASL_LINE_MAX / 4 * 3)
/* Round trips in one exchange: GSSAPI needs 3, SCRAM 2; a client that
 * goes on longer is cut off. */
#define SASL_STEPS_MAX 10
/* RFC 4422 section 3.1: a mechanism name is 1 to 20 characters of
 * A-Z, 0-9, '-' and '_'. */
#define SASL_MECH_NAME_MAX 20
/* Longest mechanism list we build (CAPA's SASL line must fit in a reply
 * line of 512 octets, RFC 2449). */
#define SASL_MECHLIST_MAX 400

/* Decode strict base64 (RFC 4648 section 4: no line breaks, no
 * whitespace, padding required, no bits left over).  "" decodes to 0
 * bytes.  0 and *outlen_r, or -1 when the text is not valid base64 or
 * does not fit in outsize. */
int saslc_b64_decode(const char *in, size_t inlen, unsigned char *out,
		     size_t outsize, size_t *outlen_r);

/* Encode len bytes as base64 with padding, NUL-terminated.  Returns the
 * length, or -1 when out (outsize bytes) is too small. */
long saslc_b64_encode(const unsigned char *in, size_t len, char *out,
		      size_t outsize);

/* 1 for a mechanism that sends a reusable secret readable on the wire
 * (PLAIN, LOGIN): offered only where plaintext credentials are allowed. */
bool saslc_mech_is_plaintext(const char *mech);

/* The offered mechanisms, from the space-separated list Cyrus SASL
 * returns for a connection: names that are not valid mechanism names
 * are dropped, ANONYMOUS is always dropped, plaintext mechanisms are
 * dropped unless plaintext_ok, and GSSAPI and CRAM-MD5 come first (some
 * clients read only the start of CAPA's SASL line).  out gets the names
 * separated by single spaces ("" for none).  Returns the count.  Names
 * that would not fit in outsize are left out. */
size_t saslc_filter_mechs(const char *cyrus_list, bool plaintext_ok,
			  char *out, size_t outsize);

/* true when mech (any case) is one of the names in list (as produced by
 * saslc_filter_mechs).  Writes the upper-case name to upper (at least
 * SASL_MECH_NAME_MAX + 1 bytes) when not NULL. */
bool saslc_mech_in_list(const char *list, const char *mech, char *upper);

/* POPLAR_POLICY_* flags of a mechanism, for `poplard --policy`. */
unsigned int saslc_mech_policy(const char *mech);

/* The local user for an authenticated SASL identity: "name" as is, or
 * "name@realm" with realm (compared without regard to case) removed.
 * The result must be 1..size-1 bytes of printable ASCII other than
 * space, '/' and ':' and must not start with '.' or '-'.  0, or -1 when
 * the identity is in another realm or not a valid local user name. */
int saslc_local_user(const char *identity, const char *realm, char *out,
		     size_t size);

#endif
