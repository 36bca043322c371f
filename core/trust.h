/* trust.h: may poplard load code from this file? */
#ifndef POPLAR_TRUST_H
#define POPLAR_TRUST_H

#include <stddef.h>

/* 0 when path may be loaded: a regular file that, like its directory
 * (and, through a symbolic link, the directory of the file it names),
 * belongs to root or to poplard's user and is writable by nobody else
 * (group write only through the owner's private group).  -1 with
 * "PATH: not loaded: reason" in err otherwise.  A path that does not
 * exist passes: loading it fails with its own message. */
int trust_check_file(const char *path, char *err, size_t errlen);

#endif
