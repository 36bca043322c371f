/* util.h: strict number parsing, secure memory helpers, small strings. */
#ifndef POPLAR_UTIL_H
#define POPLAR_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Parse a decimal number made only of digits (no sign, no space, no
 * junk), value in [min, max].  0 on success, -1 otherwise. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *value_r);

/* Constant-time compare of len bytes: 0 when equal. */
int secure_compare(const void *a, const void *b, size_t len);
/* Wipe memory in a way the compiler may not remove. */
void secure_wipe(void *p, size_t len);

/* strdup that aborts on out-of-memory (startup-time data only). */
char *xstrdup(const char *s);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n, size_t size);

/* Copy with truncation; always NUL-terminates; returns strlen(src). */
size_t strlcpy_p(char *dst, const char *src, size_t size);

/* Current monotonic time in milliseconds. */
uint64_t now_ms(void);

/* dlopen path (with the flags of dlflags.h) and find symbol in it: the
 * handle, with the symbol's address in *sym_r, or NULL with "PATH: cannot
 * load WHAT: reason", "PATH: not KIND: symbol 'SYMBOL' not found" or
 * trust_check_file's "PATH: not loaded: reason" in err. */
void *dl_open_symbol(const char *path, const char *symbol, const char *what,
		     const char *kind, void **sym_r, char *err,
		     size_t errlen);

#endif
