/* crlf.h: how a stored message becomes what RETR/TOP send.
 *
 * The transformation (one definition for sizes and for sending):
 *  - a LF not preceded by CR becomes CRLF; CRLF stays CRLF;
 *  - a message whose last byte is not LF gets a final CRLF;
 *  - when sending, a line that begins with '.' gets one more '.'
 *    (RFC 1939 byte-stuffing; not counted in sizes), and the message is
 *    followed by ".\r\n".
 * A size is therefore raw_size + (LFs without CR before them)
 * + (2 if the message does not end in LF and is not empty). */
#ifndef POPLAR_CRLF_H
#define POPLAR_CRLF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct crlf_count {
	uint64_t size;          /* CRLF octets so far */
	bool last_cr;           /* previous byte was CR */
	bool last_lf;           /* previous byte was LF (or nothing yet) */
	bool empty;
};

void crlf_count_init(struct crlf_count *c);
void crlf_count_feed(struct crlf_count *c, const void *buf, size_t len);
/* Final size, including the CRLF added to a last line without one. */
uint64_t crlf_count_finish(const struct crlf_count *c);

/* Streaming converter: CRLF conversion + byte-stuffing, and the TOP line
 * limit.  Feed raw bytes, get output bytes. */
struct crlf_stuff {
	bool last_cr;
	bool at_line_start;
	bool in_body;           /* past the blank line after the header */
	bool done;              /* TOP limit reached: ignore further input */
	long body_lines;        /* body lines left to send; -1 = all */
	bool header_blank_seen; /* previous line was empty (header end) */
	bool line_empty;        /* current line has no bytes yet */
	uint64_t sent;          /* output octets without stuffing dots */
};

void crlf_stuff_init(struct crlf_stuff *st, long body_lines);
/* Convert in[0..len) into out, which must hold 2*len+1 bytes.  Returns
 * the number of bytes written. */
size_t crlf_stuff_feed(struct crlf_stuff *st, const unsigned char *in,
		       size_t len, unsigned char *out);
/* Bytes to end the message: a final CRLF if needed, then ".\r\n".
 * out must hold 5 bytes.  Returns the count. */
size_t crlf_stuff_finish(struct crlf_stuff *st, unsigned char *out);

#endif
