/* testdir.h: what the unit tests of files on disk share: a temporary
 * directory per test, the log caught in a file inside it, and whole
 * files written and read with assertions. */
#ifndef POPLAR_TESTDIR_H
#define POPLAR_TESTDIR_H

#include <stddef.h>

/* The test's directory; "" when there is none.  Well under PATH_MAX, so
 * that paths built from it always fit the callers' buffers. */
extern char test_dir[1024];

/* Make test_dir: $TMPDIR (or /tmp)/poplar-TAG.XXXXXX. */
void test_dir_make(const char *tag);
/* Remove test_dir and all below it (asserts that it worked); no-op
 * when there is none.  Restores stderr first if test_log_catch took
 * it. */
void test_dir_remove(void);

/* log_open(stderr) as ident, with stderr sent to test_dir/log. */
void test_log_catch(const char *ident);
/* Everything logged since test_log_catch (at most 64 KiB). */
const char *test_log_text(void);

/* Write (create or truncate, mode 0600) or append len bytes. */
void test_write_file(const char *path, const void *data, size_t len);
void test_append_file(const char *path, const void *data, size_t len);
/* The whole file, NUL-terminated, malloc'd; its length in *len_r. */
char *test_read_file(const char *path, size_t *len_r);

#endif
