/* apop_core.c: APOP timestamp, digest and secrets file (RFC 1939 section 7).
 * MD5 is weak (CVE-2007-1558: a man in the middle can recover parts of
 * the secret); the module reports APOP as guessable without TLS. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "apop_core.h"

int
apop_timestamp(char *out, size_t size, const char *hostname, pid_t pid)
{
	unsigned char rnd[16];
	char hex[33];
	int n;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	n = snprintf(out, size, "<%s.%ld@%s>", hex, (long)pid, hostname);
	return n > 0 && (size_t)n < size ? 0 : -1;
}

int
apop_digest_hex(const char *timestamp, const char *secret, size_t secret_len,
		char hex_out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (ctx == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) == 1 &&
	     EVP_DigestUpdate(ctx, secret, secret_len) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -1;
	for (unsigned int i = 0; i < 16; i++)
		snprintf(hex_out + 2 * i, 3, "%02x", md[i]);
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

int
apop_verify(const char *timestamp, const char *secret, size_t secret_len,
	    const char *digest)
{
	char expected[33], given[33];
	int wellformed = strlen(digest) == 32;

	for (size_t i = 0; i < 32; i++) {
		char c = wellformed ? digest[i] : '0';

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			wellformed = 0;
			c = '0';
		}
		given[i] = c;
	}
	given[32] = '\0';
	if (apop_digest_hex(timestamp, secret, secret_len, expected) < 0)
		return 0;
	/* Compare even when malformed: same work either way. */
	int equal = CRYPTO_memcmp(expected, given, 32) == 0;

	OPENSSL_cleanse(expected, sizeof(expected));
	return wellformed && equal;
}

static int
check_stat(const struct stat *st, uid_t euid, const char **error_r)
{
	if (!S_ISREG(st->st_mode)) {
		*error_r = "not a regular file";
		return -1;
	}
	if (st->st_mode & 077) {
		*error_r = "readable or writable by group or others "
			   "(chmod 600 it)";
		return -1;
	}
	if (st->st_uid != 0 && st->st_uid != euid) {
		*error_r = "owned by another user (it must belong to root or "
			   "to the user poplard runs as)";
		return -1;
	}
	return 0;
}

int
apop_check_file(const char *path, uid_t euid, const char **error_r)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	return check_stat(&st, euid, error_r);
}

int
apop_lookup(const char *path, uid_t euid, const char *user, char *secret,
	    size_t size, size_t *len_r, const char **error_r)
{
	char line[APOP_LINE_MAX + 2];
	size_t ulen = strlen(user);
	struct stat st;
	FILE *f;
	int fd, found = 0;

	*error_r = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) < 0 || check_stat(&st, euid, error_r) < 0) {
		if (*error_r == NULL)
			*error_r = strerror(errno);
		close(fd);
		return -1;
	}
	f = fdopen(fd, "r");
	if (f == NULL) {
		*error_r = strerror(errno);
		close(fd);
		return -1;
	}
	/* Not buffered beyond our own line: nothing of other users' secrets
	 * stays in a stdio buffer we cannot wipe. */
	setvbuf(f, NULL, _IONBF, 0);
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);
		char *colon;

		if (len > APOP_LINE_MAX) {
			*error_r = "line too long";
			found = -1;
			break;
		}
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		colon = strchr(line, ':');
		if (colon == NULL || (size_t)(colon - line) != ulen ||
		    memcmp(line, user, ulen) != 0)
			continue;
		len = strlen(colon + 1);
		if (len == 0 || len >= size || len > APOP_SECRET_MAX) {
			*error_r = "secret empty or too long";
			found = -1;
			break;
		}
		memcpy(secret, colon + 1, len + 1);
		*len_r = len;
		found = 1;
		break;
	}
	OPENSSL_cleanse(line, sizeof(line));
	fclose(f);
	return found;
}
