/* log.h: logging to syslog or stderr, and key=value escaping. */
#ifndef POPLAR_LOG_H
#define POPLAR_LOG_H

#include <stddef.h>
#include <syslog.h>

enum log_target { LOG_TARGET_SYSLOG, LOG_TARGET_STDERR };

/* Select the target.  ident names the program in syslog and on stderr. */
void log_open(enum log_target target, const char *ident);
/* Also copy every line to stderr (-F with syslog). */
void log_also_stderr(int on);
/* Reopen syslog with another facility (LOG_MAIL by default). */
void log_open_facility(int facility);
/* Log LOG_DEBUG lines too (off by default). */
void log_set_debug(int on);
/* prio is a syslog priority (LOG_ERR, LOG_WARNING, LOG_INFO, ...). */
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write s as a log value into out (size bytes): plain when it is made of
 * safe characters, else double-quoted with \" \\ and \xHH escapes, cut to
 * fit.  Returns out.  Use it for anything the client chose. */
const char *log_value(char *out, size_t size, const char *s);

#endif
