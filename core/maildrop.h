/* maildrop.h: one interface over maildrop formats (Maildir and mbox),
 * and the session lock that keeps one POP3 client per maildrop.
 *
 * Sizes are RFC 1939 sizes: the octets RETR sends before byte-stuffing,
 * with CRLF line ends (see crlf.h for the exact transformation). */
#ifndef POPLAR_MAILDROP_H
#define POPLAR_MAILDROP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "params.h"

struct maildrop_msg {
	uint64_t size;                  /* CRLF octets, as sent */
	uint64_t raw_size;              /* bytes stored */
	off_t offset;                   /* where the message starts in fd */
	bool deleted;                   /* marked by DELE, cleared by RSET */
	char *name;                     /* driver's: Maildir "new/NAME" */
	/* The UIDL when the driver made it at open (malloc'd, freed with
	 * the list), else NULL: the driver's uidl makes it when asked.  A
	 * maildrop of 200,000 messages is listed on every login, and most
	 * sessions never ask for a UIDL. */
	char *uidl;
};

enum maildrop_error {
	MAILDROP_OK = 0,
	MAILDROP_ERR_TEMP,              /* -ERR [SYS/TEMP] */
	MAILDROP_ERR_PERM,              /* -ERR [SYS/PERM] */
	MAILDROP_ERR_IN_USE             /* -ERR [IN-USE] */
};

struct maildrop_driver;

struct maildrop {
	const struct maildrop_driver *driver;
	char *path;                     /* expanded location, no "maildir:" */
	struct maildrop_msg *msgs;
	size_t count;
	uint64_t total_size;            /* of all messages (STAT before DELE) */
	unsigned int flags;             /* MAILDROP_* options */
	void *priv;                     /* driver's */
};

/* Error texts returned through error_r are static (valid until the next
 * call into the same driver), so they outlive a maildrop that failed to
 * open.  msg_open and commit may update msgs[i].name when another client
 * moved a message (new/ to cur/, flag changes); msg_open fails when the
 * message's size no longer matches raw_size. */
struct maildrop_driver {
	const char *name;               /* "maildir" */
	/* Path of the session lock file for the maildrop at path. */
	int (*lock_path)(const char *path, char *out, size_t size);
	/* Read the message list into md->msgs.  0, or -1 with *err_r and
	 * *error_r (static or md-owned text for the log). */
	int (*open)(struct maildrop *md, enum maildrop_error *err_r,
		    const char **error_r);
	/* Open message idx for reading: *fd_r, starting at
	 * msgs[idx].offset for msgs[idx].raw_size bytes.  The caller closes
	 * it with msg_close.  0 or -1. */
	int (*msg_open)(struct maildrop *md, size_t idx, int *fd_r,
			const char **error_r);
	void (*msg_close)(struct maildrop *md, size_t idx, int fd);
	/* The UIDL of message idx, when msgs[idx].uidl is NULL, into out
	 * (POP3_UIDL_MAX + 1 bytes): the same for the message whenever it
	 * is asked for. */
	void (*uidl)(const struct maildrop *md, size_t idx, char *out);
	/* Apply deletions (UPDATE state).  *deleted_r counts the messages
	 * really removed.  A message that vanished meanwhile is not an
	 * error.  0 or -1. */
	int (*commit)(struct maildrop *md, unsigned int *deleted_r,
		      enum maildrop_error *err_r, const char **error_r);
	void (*close)(struct maildrop *md);
};

/* The UIDL of message idx: msgs[idx].uidl, or buf (POP3_UIDL_MAX + 1
 * bytes) filled by the driver. */
const char *maildrop_uidl(const struct maildrop *md, size_t idx, char *buf);

extern const struct maildrop_driver maildrop_maildir;
extern const struct maildrop_driver maildrop_mbox;

/* Settings of the mbox driver ([maildrop] state_dir, dotlock_stale_age,
 * lock_timeout), set once per session before lock_path/open.  state_dir
 * is an expanded directory for the .NAME.pop/.uidl/.index/.journal
 * files, or NULL or "" for the mbox's own directory. */
void maildrop_mbox_configure(const char *state_dir, unsigned int stale_age,
			     unsigned int lock_timeout);

/* Expand a location ("maildir:%h/Maildir") for a user: %u user name,
 * %h home, %% percent.  Returns the driver, writes the path into out, or
 * returns NULL with *error_r. */
const struct maildrop_driver *maildrop_expand(const char *location,
					      const char *user,
					      const char *home, char *out,
					      size_t size,
					      const char **error_r);

/* Expand a path pattern (no driver prefix) the same way: %u %h %%, an
 * absolute result.  0, or -1 with *error_r. */
int maildrop_expand_path(const char *pattern, const char *user,
			 const char *home, char *out, size_t size,
			 const char **error_r);
/* Check a path pattern's syntax without a user. */
int maildrop_path_valid(const char *pattern, const char **error_r);

/* Check a location's syntax without a user (config validation). */
int maildrop_location_valid(const char *location, const char **error_r);

/* Do not read or write a size cache/index ([maildrop] size_cache = no). */
#define MAILDROP_NO_CACHE 0x1u

/* Open: take the driver's data.  Returns NULL with *err_r, *error_r. */
struct maildrop *maildrop_open(const struct maildrop_driver *drv,
			       const char *path, unsigned int flags,
			       enum maildrop_error *err_r,
			       const char **error_r);
void maildrop_close(struct maildrop **md);

/* Session lock: an fcntl write lock on a separate lock file, held for the
 * whole session, released by the kernel when the process dies (also on
 * NFS with lockd).  The lock file is created mode 0600 if missing.  fcntl
 * locks belong to the process: closing any other descriptor of the lock
 * file in this process drops the lock, so nothing else may open it. */
struct session_lock;
/* 1 locked, 0 held by another session, -1 error (*error_r). */
int session_lock_try(const char *path, struct session_lock **lock_r,
		     const char **error_r);
void session_lock_release(struct session_lock **lock);

#endif
