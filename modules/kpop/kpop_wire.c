/* kpop_wire.c: framing rules of the KPOP pre-greeting exchange (see
 * kpop_wire.h).  Pure functions over client bytes; nothing here trusts
 * a length before it has been bounded. */
#include <string.h>
#include "kpop_wire.h"

uint32_t
kpop_get_len(const unsigned char b[4])
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

void
kpop_put_len(unsigned char b[4], uint32_t len)
{
	b[0] = (unsigned char)(len >> 24);
	b[1] = (unsigned char)(len >> 16);
	b[2] = (unsigned char)(len >> 8);
	b[3] = (unsigned char)len;
}

int
kpop_len_ok(const unsigned char b[4], uint32_t max, uint32_t *len_r)
{
	uint32_t len = kpop_get_len(b);

	if (len == 0 || len > max)
		return 0;
	*len_r = len;
	return 1;
}

static int
is_letter(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

enum kpop_first
kpop_classify_first(const unsigned char b[4])
{
	if (kpop_get_len(b) == KPOP_SENDAUTH_VERSION_LEN)
		return KPOP_FIRST_SENDAUTH;
	if (memcmp(b, "AUTH", 4) == 0)
		return KPOP_FIRST_AUTH;
	/* POP3 command names are 3 or 4 letters; a 3-letter one (TOP) is
	 * followed by a space or CR. */
	if (is_letter(b[0]) && is_letter(b[1]) && is_letter(b[2]) &&
	    (is_letter(b[3]) || b[3] == ' ' || b[3] == '\r' || b[3] == '\n'))
		return KPOP_FIRST_POP3;
	if (kpop_get_len(b) > KPOP_APREQ_MAX)
		return KPOP_FIRST_OVERSIZED;
	return KPOP_FIRST_GARBAGE;
}

int
kpop_is_krb4(const unsigned char next[4])
{
	return memcmp(next, "V0.1", 4) == 0;
}

const char *
kpop_first_describe(enum kpop_first f)
{
	switch (f) {
	case KPOP_FIRST_SENDAUTH: return "krb5 sendauth";
	case KPOP_FIRST_AUTH: return "POP3 AUTH or Kerberos 4";
	case KPOP_FIRST_POP3: return "plain POP3 client (no Kerberos sendauth)";
	case KPOP_FIRST_OVERSIZED: return "oversized length";
	case KPOP_FIRST_GARBAGE: return "not a Kerberos sendauth exchange";
	}
	return "?";
}

void
kpop_printable(const unsigned char *in, size_t n, char *out, size_t outsize)
{
	size_t i;

	if (outsize == 0)
		return;
	for (i = 0; i < n && i < outsize - 1; i++)
		out[i] = (in[i] > ' ' && in[i] < 0x7f && in[i] != '"' &&
			  in[i] != '\\') ? (char)in[i] : '.';
	out[i] = '\0';
}
