/* userdb.c: local users and their passwords.
 *
 * Runs as root (it reads shadow or a root-only passwd-file).  Passwords
 * are handled only in verify, and crypt's work area is wiped after use. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <crypt.h>
#include <errno.h>
#include <pwd.h>
#include <shadow.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "log.h"
#include "params.h"
#include "userdb.h"
#include "util.h"

struct pf_entry {
	char *name;
	char *hash;
	uid_t uid;
	gid_t gid;
	char *home;
	unsigned int line;      /* in the file, for error messages */
};

static const struct config *db_cfg;

/* The passwd-file's users, in the arena below: a hash table of slots
 * (open addressing, at most half full), then one record per user with
 * its strings beside it.  A university's file has tens of thousands of
 * lines; a look-up reads one slot and one record, so a fresh session
 * process touches two pages of the arena whatever the file's size (a
 * binary search over an array touched a dozen). */
struct pf_slot {
	uint32_t tag;           /* the name's hash */
	uint32_t off;           /* the record's offset in the arena; 0 empty */
};

struct pf_rec {
	uid_t uid;
	gid_t gid;
	char data[];            /* name, hash and home, each NUL-ended */
};

static const struct pf_slot *pf_slots;
static size_t pf_mask;          /* slot count - 1 (a power of two) */

/* A valid hash of a random password, so that an unknown user costs the
 * same hashing work as a known one.  Made once at start-up. */
static char dummy_hash[CRYPT_OUTPUT_SIZE];

/* The users live in one shared anonymous mapping (the arena), read-only
 * once loaded.  A session's fork copies no page table entries for it
 * (shared mappings are faulted in on demand: a look-up touches two
 * pages), and after login the session unmaps it, so that a process
 * running as a user holds no other user's password hash. */
static void *arena;
static size_t arena_size;

/* Free the loading copies (heap), wiping their hashes. */
static void
pf_free_heap(struct pf_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		secure_wipe(v[i].hash, strlen(v[i].hash));
		free(v[i].name);
		free(v[i].hash);
		free(v[i].home);
	}
	free(v);
}

static void
pf_free(void)
{
	/* Wipe our view only when it is ours to wipe: the master's (a
	 * session unmaps it with userdb_forget, the master's copy intact). */
	if (arena != NULL &&
	    mprotect(arena, arena_size, PROT_READ | PROT_WRITE) == 0)
		secure_wipe(arena, arena_size);
	userdb_forget();
}

/* FNV-1a: cheap, and the table is built from the administrator's file,
 * so a client choosing names can only look up, not crowd a slot. */
static uint32_t
pf_hash(const char *name)
{
	uint32_t h = 2166136261u;

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

/* Copy v[0..n) into a new arena: the slots, then the records. */
static int
pf_pack(struct pf_entry *v, size_t n, char *err, size_t errlen)
{
	const size_t align = _Alignof(struct pf_rec);
	size_t nslots = 8, size, off;
	struct pf_slot *slots;

	while (nslots < 2 * n)
		nslots *= 2;
	size = nslots * sizeof(*slots);
	for (size_t i = 0; i < n; i++) {
		size_t rec = sizeof(struct pf_rec) + strlen(v[i].name) +
			     strlen(v[i].hash) + strlen(v[i].home) + 3;

		size += (rec + align - 1) / align * align;
	}
	if (size > UINT32_MAX) {
		snprintf(err, errlen, "too many users (%zu)", n);
		return -1;
	}
	arena = mmap(NULL, size, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (arena == MAP_FAILED) {
		arena = NULL;
		snprintf(err, errlen, "cannot map %zu bytes for the users: %s",
			 size, strerror(errno));
		return -1;
	}
	arena_size = size;
	slots = arena;
	off = nslots * sizeof(*slots);
	for (size_t i = 0; i < n; i++) {
		struct pf_rec *r = (struct pf_rec *)(void *)((char *)arena + off);
		const char *src[3] = { v[i].name, v[i].hash, v[i].home };
		char *p = r->data;
		uint32_t h = pf_hash(v[i].name);
		size_t k = h & (nslots - 1);

		r->uid = v[i].uid;
		r->gid = v[i].gid;
		for (int f = 0; f < 3; f++) {
			size_t len = strlen(src[f]) + 1;

			memcpy(p, src[f], len);
			p += len;
		}
		/* At most half full: a free slot is always found. */
		while (slots[k].off != 0)
			k = (k + 1) & (nslots - 1);
		slots[k].tag = h;
		slots[k].off = (uint32_t)off;
		off += ((size_t)(p - (char *)r) + align - 1) / align * align;
	}
	pf_slots = slots;
	pf_mask = nslots - 1;
	(void)mprotect(arena, arena_size, PROT_READ);
	return 0;
}

void
userdb_forget(void)
{
	/* Unmap without wiping: the master's view is the same memory. */
	if (arena != NULL)
		munmap(arena, arena_size);
	arena = NULL;
	arena_size = 0;
	pf_slots = NULL;
	pf_mask = 0;
}

static int
parse_id(const char *s, unsigned long *v)
{
	uint64_t x;

	if (*s == '\0') {
		*v = (unsigned long)-1;
		return 0;
	}
	if (parse_uint(s, 0, 4294967294u, &x) < 0)
		return -1;
	*v = (unsigned long)x;
	return 0;
}

static int
valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > POPLAR_USER_MAX || s[0] == '.' || s[0] == '-')
		return 0;
	for (; *s; s++)
		if (*s <= ' ' || *s >= 0x7f || *s == '/' || *s == ':')
			return 0;
	return 1;
}

static int
pf_cmp(const void *a, const void *b)
{
	const struct pf_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : x->line < y->line ? -1 : x->line > y->line;
}

/* Look name up; 1 found (e filled with pointers into the arena), 0 not. */
static int
pf_find(const char *name, struct pf_entry *e)
{
	uint32_t h;
	size_t k;

	if (pf_slots == NULL)
		return 0;
	h = pf_hash(name);
	/* The table is at most half full: an empty slot ends every probe. */
	for (k = h & pf_mask; pf_slots[k].off != 0; k = (k + 1) & pf_mask) {
		const struct pf_rec *r;

		if (pf_slots[k].tag != h)
			continue;
		r = (const struct pf_rec *)(const void *)
		    ((const char *)arena + pf_slots[k].off);
		if (strcmp(r->data, name) != 0)
			continue;
		e->name = (char *)r->data;
		e->hash = e->name + strlen(e->name) + 1;
		e->home = e->hash + strlen(e->hash) + 1;
		e->uid = r->uid;
		e->gid = r->gid;
		e->line = 0;
		return 1;
	}
	return 0;
}

static int
pf_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char line[USERDB_LINE_MAX + 2];
	char iobuf[BUFSIZ];
	unsigned int lineno = 0;
	struct pf_entry *v = NULL;
	size_t nv = 0, cap = 0;

	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot read: %s", path,
			 strerror(errno));
		return -1;
	}
	/* stdio's own buffer would go back to malloc at fclose still
	 * holding the file, every user's hash in it, and a session forked
	 * later would inherit that copy.  This one is wiped with line. */
	setvbuf(f, iobuf, _IOFBF, sizeof(iobuf));
	while (fgets(line, sizeof(line), f) != NULL) {
		char *fields[5], *p = line;
		size_t len = strlen(line);
		unsigned long uid, gid;
		int nf = 0;

		lineno++;
		if (len > USERDB_LINE_MAX) {
			snprintf(err, errlen, "%s:%u: line too long", path, lineno);
			goto fail;
		}
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		fields[nf++] = p;
		while ((p = strchr(p, ':')) != NULL && nf < 5) {
			*p++ = '\0';
			fields[nf++] = p;
		}
		if (nf != 5 || p != NULL) {
			snprintf(err, errlen, "%s:%u: expected NAME:HASH:UID:GID:HOME",
				 path, lineno);
			goto fail;
		}
		if (!valid_name(fields[0])) {
			snprintf(err, errlen, "%s:%u: invalid user name", path,
				 lineno);
			goto fail;
		}
		if (parse_id(fields[2], &uid) < 0 || parse_id(fields[3], &gid) < 0) {
			snprintf(err, errlen, "%s:%u: invalid UID or GID", path,
				 lineno);
			goto fail;
		}
		if (fields[4][0] != '/') {
			snprintf(err, errlen, "%s:%u: HOME must be an absolute path",
				 path, lineno);
			goto fail;
		}
		if (nv == cap) {
			cap = cap ? 2 * cap : 64;
			v = xrealloc(v, cap, sizeof(*v));
		}
		v[nv].name = xstrdup(fields[0]);
		v[nv].hash = xstrdup(fields[1]);
		v[nv].uid = (uid_t)uid;
		v[nv].gid = (gid_t)gid;
		v[nv].home = xstrdup(fields[4]);
		v[nv].line = lineno;
		nv++;
	}
	secure_wipe(line, sizeof(line));
	fclose(f);
	secure_wipe(iobuf, sizeof(iobuf));
	if (nv > 0)
		qsort(v, nv, sizeof(*v), pf_cmp);
	/* A name given twice: report the first line (in file order) that
	 * repeats an earlier one. */
	{
		const struct pf_entry *dup = NULL;

		for (size_t i = 1; i < nv; i++) {
			if (strcmp(v[i - 1].name, v[i].name) != 0)
				continue;
			/* Sorted by name, then line: v[i] repeats v[i-1]. */
			if (dup == NULL || v[i].line < dup->line)
				dup = &v[i];
		}
		if (dup != NULL) {
			snprintf(err, errlen, "%s:%u: duplicate user '%s'", path,
				 dup->line, dup->name);
			pf_free_heap(v, nv);
			return -1;
		}
	}
	if (pf_pack(v, nv, err, errlen) < 0) {
		pf_free_heap(v, nv);
		return -1;
	}
	pf_free_heap(v, nv);
	return 0;
fail:
	secure_wipe(line, sizeof(line));
	fclose(f);
	secure_wipe(iobuf, sizeof(iobuf));
	pf_free_heap(v, nv);
	return -1;
}

int
userdb_init(const struct config *cfg, char *err, size_t errlen)
{
	struct crypt_data *cd;
	unsigned char rnd[16];
	char pw[33];
	const char *setting;

	db_cfg = cfg;
	pf_free();
	if (cfg->userdb_driver == USERDB_PASSWD_FILE &&
	    pf_load(cfg->userdb_file, err, errlen) < 0)
		return -1;

	if (dummy_hash[0] == '\0') {
		FILE *f = fopen("/dev/urandom", "re");

		if (f == NULL || fread(rnd, 1, sizeof(rnd), f) != sizeof(rnd)) {
			if (f)
				fclose(f);
			snprintf(err, errlen, "cannot read /dev/urandom");
			return -1;
		}
		fclose(f);
		for (size_t i = 0; i < sizeof(rnd); i++)
			snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
		cd = xcalloc(1, sizeof(*cd));
		setting = crypt_gensalt_rn("$6$", 0, NULL, 0, cd->setting,
					   sizeof(cd->setting));
		if (setting != NULL) {
			const char *h = crypt_r(pw, setting, cd);

			if (h != NULL && h[0] != '*')
				strlcpy_p(dummy_hash, h, sizeof(dummy_hash));
		}
		secure_wipe(cd, sizeof(*cd));
		free(cd);
		secure_wipe(pw, sizeof(pw));
	}
	return 0;
}

static int
set_user(struct userdb_user *user_r, const char *name, uid_t uid, gid_t gid,
	 const char *home)
{
	strlcpy_p(user_r->name, name, sizeof(user_r->name));
	user_r->uid = uid;
	user_r->gid = gid;
	strlcpy_p(user_r->home, home, sizeof(user_r->home));
	return 1;
}

/* Out of line: its 8 KiB buffer is not on the stack of a passwd-file
 * lookup (fresh stack pages are page faults in a session process). */
static __attribute__((noinline)) int
system_lookup(const char *name, struct userdb_user *user_r,
	      const char **error_r)
{
	struct passwd pwbuf, *pw = NULL;
	char buf[8192];
	int r = getpwnam_r(name, &pwbuf, buf, sizeof(buf), &pw);

	if (r != 0 && r != ENOENT && r != ESRCH) {
		*error_r = "getpwnam_r failed";
		return -1;
	}
	if (pw == NULL)
		return 0;
	return set_user(user_r, pw->pw_name, pw->pw_uid, pw->pw_gid,
			pw->pw_dir);
}

int
userdb_lookup(const char *name, struct userdb_user *user_r,
	      const char **error_r)
{
	*error_r = NULL;
	if (!valid_name(name))
		return 0;
	memset(user_r, 0, sizeof(*user_r));
	if (db_cfg != NULL && db_cfg->userdb_driver == USERDB_PASSWD_FILE) {
		struct pf_entry e;

		if (!pf_find(name, &e))
			return 0;
		return set_user(user_r, e.name, e.uid, e.gid, e.home);
	}
	return system_lookup(name, user_r, error_r);
}

int
userdb_crypt_check(const char *password, const char *hash)
{
	struct crypt_data *cd;
	const char *h;
	int r;

	if (hash == NULL || hash[0] == '\0' || hash[0] == '*' || hash[0] == '!')
		return -1;
	/* struct crypt_data is 32 KiB, and crypt_r clears all of it when
	 * done.  A login is one short process, where each page first
	 * written is a page fault: a fresh mapping populated in one call
	 * costs less than eight faults and a calloc's clearing, and
	 * unmapping it takes crypt_r's state out of the process. */
	cd = mmap(NULL, sizeof(*cd), PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (cd == MAP_FAILED)
		return -1;
	h = crypt_r(password, hash, cd);
	if (h == NULL || h[0] == '*' || strlen(h) != strlen(hash))
		r = -1;
	else
		r = secure_compare(h, hash, strlen(hash)) == 0;
	munmap(cd, sizeof(*cd));
	return r;
}

/* The hash for name from the system shadow (or passwd), copied into out.
 * 1 found, 0 not. */
static int
system_hash(const char *name, char *out, size_t size)
{
	struct spwd spbuf, *sp = NULL;
	struct passwd pwbuf, *pw = NULL;
	char buf[8192];
	int found = 0;

	if (getspnam_r(name, &spbuf, buf, sizeof(buf), &sp) == 0 && sp != NULL) {
		strlcpy_p(out, sp->sp_pwdp, size);
		found = 1;
	} else if (getpwnam_r(name, &pwbuf, buf, sizeof(buf), &pw) == 0 &&
		   pw != NULL) {
		strlcpy_p(out, pw->pw_passwd, size);
		found = 1;
	}
	secure_wipe(buf, sizeof(buf));
	return found;
}

enum poplar_verify
userdb_verify_password(const char *name, const char *password,
		       const char **reason_r)
{
	char hash[512];
	int known = 0, r;

	*reason_r = NULL;
	hash[0] = '\0';
	if (valid_name(name)) {
		if (db_cfg != NULL && db_cfg->userdb_driver == USERDB_PASSWD_FILE) {
			struct pf_entry e;

			if (pf_find(name, &e)) {
				strlcpy_p(hash, e.hash, sizeof(hash));
				known = 1;
			}
		} else {
			known = system_hash(name, hash, sizeof(hash));
		}
	}
	if (!known) {
		/* Same work as for a real user. */
		if (dummy_hash[0] != '\0')
			(void)userdb_crypt_check(password, dummy_hash);
		*reason_r = "unknown user";
		return POPLAR_VERIFY_FAIL;
	}
	r = userdb_crypt_check(password, hash);
	secure_wipe(hash, sizeof(hash));
	if (r < 0) {
		if (dummy_hash[0] != '\0')
			(void)userdb_crypt_check(password, dummy_hash);
		*reason_r = "account has no usable password hash";
		return POPLAR_VERIFY_FAIL;
	}
	if (r == 0) {
		*reason_r = "wrong password";
		return POPLAR_VERIFY_FAIL;
	}
	return POPLAR_VERIFY_OK;
}
