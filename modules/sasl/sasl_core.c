/* sasl_core.c: base64, the mechanism-list filter, mechanism policy and
 * the identity-to-user rule of the sasl module (no Cyrus SASL here, so
 * that the unit tests can check every rule directly). */
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include "poplar-module.h"
#include "sasl_core.h"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of a base64 digit, or -1. */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
saslc_b64_decode(const char *in, size_t inlen, unsigned char *out,
		 size_t outsize, size_t *outlen_r)
{
	size_t n = 0;

	*outlen_r = 0;
	if (inlen % 4 != 0)
		return -1;
	for (size_t i = 0; i < inlen; i += 4) {
		int v[4], pad = 0;
		uint32_t bits;

		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];

			if (c == '=' && i + 4 == inlen && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			/* A digit after '=' is not base64. */
			if (pad > 0)
				return -1;
			v[k] = b64_value(c);
			if (v[k] < 0)
				return -1;
		}
		bits = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
		       (uint32_t)v[2] << 6 | (uint32_t)v[3];
		/* Bits the padding hides must be zero (RFC 4648 3.5): one
		 * text, one meaning. */
		if ((pad == 1 && (bits & 0xff) != 0) ||
		    (pad == 2 && (bits & 0xffff) != 0))
			return -1;
		if (n > outsize || outsize - n < (size_t)(3 - pad))
			return -1;
		out[n++] = (unsigned char)(bits >> 16);
		if (pad < 2)
			out[n++] = (unsigned char)(bits >> 8);
		if (pad < 1)
			out[n++] = (unsigned char)bits;
	}
	*outlen_r = n;
	return 0;
}

long
saslc_b64_encode(const unsigned char *in, size_t len, char *out,
		 size_t outsize)
{
	size_t need, n = 0;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return -1;
	need = (len + 2) / 3 * 4;
	if (outsize <= need || need > (size_t)INT32_MAX)
		return -1;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t bits = (uint32_t)in[i] << 16;
		size_t left = len - i;

		if (left > 1)
			bits |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			bits |= in[i + 2];
		out[n++] = b64_alphabet[bits >> 18 & 63];
		out[n++] = b64_alphabet[bits >> 12 & 63];
		out[n++] = left > 1 ? b64_alphabet[bits >> 6 & 63] : '=';
		out[n++] = left > 2 ? b64_alphabet[bits & 63] : '=';
	}
	out[n] = '\0';
	return (long)n;
}

bool
saslc_mech_is_plaintext(const char *mech)
{
	return strcasecmp(mech, "PLAIN") == 0 ||
	       strcasecmp(mech, "LOGIN") == 0;
}

static bool
valid_mech_name(const char *p, size_t len)
{
	if (len == 0 || len > SASL_MECH_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((p[i] >= 'A' && p[i] <= 'Z') ||
		      (p[i] >= '0' && p[i] <= '9') || p[i] == '-' ||
		      p[i] == '_'))
			return false;
	return true;
}

/* Append one name to out (space separated).  false when it does not fit. */
static bool
append_name(char *out, size_t outsize, size_t *used, const char *p,
	    size_t len)
{
	size_t sep = *used > 0 ? 1 : 0;

	if (*used + sep + len >= outsize)
		return false;
	if (sep)
		out[(*used)++] = ' ';
	memcpy(out + *used, p, len);
	*used += len;
	out[*used] = '\0';
	return true;
}

/* true when the word p[0..len) passes the filter. */
static bool
mech_offered(const char *p, size_t len, bool plaintext_ok)
{
	char name[SASL_MECH_NAME_MAX + 1];

	if (!valid_mech_name(p, len))
		return false;
	memcpy(name, p, len);
	name[len] = '\0';
	if (strcmp(name, "ANONYMOUS") == 0)
		return false;
	return plaintext_ok || !saslc_mech_is_plaintext(name);
}

/* true when the word w (len bytes) occurs in the space-separated list. */
static bool
word_in(const char *list, const char *w, size_t len)
{
	const char *p = list;

	while (*p != '\0') {
		size_t n;

		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		if (n == len && memcmp(p, w, len) == 0)
			return true;
		p += n;
	}
	return false;
}

size_t
saslc_filter_mechs(const char *cyrus_list, bool plaintext_ok, char *out,
		   size_t outsize)
{
	/* Listed first, in this order, when offered. */
	static const char *const first[] = { "GSSAPI", "CRAM-MD5" };
	size_t used = 0, count = 0;
	const char *p;

	if (outsize == 0)
		return 0;
	out[0] = '\0';
	if (cyrus_list == NULL)
		return 0;
	for (size_t k = 0; k < sizeof(first) / sizeof(first[0]); k++) {
		size_t len = strlen(first[k]);

		if (word_in(cyrus_list, first[k], len) &&
		    mech_offered(first[k], len, plaintext_ok) &&
		    append_name(out, outsize, &used, first[k], len))
			count++;
	}
	/* The rest in Cyrus's order, each name once. */
	for (p = cyrus_list; *p != '\0';) {
		size_t len;

		while (*p == ' ')
			p++;
		len = strcspn(p, " ");
		if (len == 0)
			break;
		if (mech_offered(p, len, plaintext_ok) &&
		    !word_in(out, p, len) &&
		    append_name(out, outsize, &used, p, len))
			count++;
		p += len;
	}
	return count;
}

bool
saslc_mech_in_list(const char *list, const char *mech, char *upper)
{
	char name[SASL_MECH_NAME_MAX + 1];
	size_t len = strlen(mech);
	const char *p = list;

	if (len == 0 || len > SASL_MECH_NAME_MAX)
		return false;
	for (size_t i = 0; i <= len; i++)
		name[i] = (mech[i] >= 'a' && mech[i] <= 'z')
			  ? (char)(mech[i] - 'a' + 'A') : mech[i];
	if (upper != NULL)
		memcpy(upper, name, len + 1);
	while (*p != '\0') {
		size_t w;

		while (*p == ' ')
			p++;
		w = strcspn(p, " ");
		if (w == len && memcmp(p, name, len) == 0)
			return true;
		p += w;
	}
	return false;
}

unsigned int
saslc_mech_policy(const char *mech)
{
	static const struct {
		const char *name;
		unsigned int flags;
	} table[] = {
		{ "PLAIN", POPLAR_POLICY_PLAINTEXT },
		{ "LOGIN", POPLAR_POLICY_PLAINTEXT },
		{ "CRAM-MD5", POPLAR_POLICY_GUESSABLE |
			      POPLAR_POLICY_REPLAY_SAFE },
		{ "DIGEST-MD5", POPLAR_POLICY_GUESSABLE |
				POPLAR_POLICY_REPLAY_SAFE },
		{ "NTLM", POPLAR_POLICY_GUESSABLE | POPLAR_POLICY_REPLAY_SAFE },
		{ "GSSAPI", POPLAR_POLICY_REPLAY_SAFE | POPLAR_POLICY_MUTUAL },
		{ "GS2-KRB5", POPLAR_POLICY_REPLAY_SAFE | POPLAR_POLICY_MUTUAL },
		/* EXTERNAL is the TLS client certificate: offered only inside
		 * TLS, where the server has proved itself too. */
		{ "EXTERNAL", POPLAR_POLICY_REPLAY_SAFE | POPLAR_POLICY_MUTUAL },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcasecmp(mech, table[i].name) == 0)
			return table[i].flags;
	/* SCRAM-SHA-1, SCRAM-SHA-256, ...: salted challenge-response with
	 * a server signature. */
	if (strncasecmp(mech, "SCRAM-", 6) == 0)
		return POPLAR_POLICY_REPLAY_SAFE | POPLAR_POLICY_MUTUAL;
	/* Unknown to us: claim nothing. */
	return 0;
}

int
saslc_local_user(const char *identity, const char *realm, char *out,
		 size_t size)
{
	const char *at = strrchr(identity, '@');
	size_t len = at != NULL ? (size_t)(at - identity) : strlen(identity);

	if (size > 0)
		out[0] = '\0';
	if (at != NULL && (realm == NULL || *realm == '\0' ||
			   strcasecmp(at + 1, realm) != 0))
		return -1;
	if (len == 0 || len >= size)
		return -1;
	if (identity[0] == '.' || identity[0] == '-')
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)identity[i];

		if (c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == '@')
			return -1;
	}
	memcpy(out, identity, len);
	out[len] = '\0';
	return 0;
}
