/* pio.h: buffered POP3 line I/O over a transport (plain fds now, TLS
 * later through the same ops).  Output is buffered and flushed when the
 * input buffer holds no further command, so pipelined commands are
 * answered in order with one write per batch. */
#ifndef POPLAR_PIO_H
#define POPLAR_PIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct pio_ops {
	/* Like read(2)/write(2); may return -1 with errno EAGAIN/EINTR. */
	ssize_t (*read)(void *ctx, void *buf, size_t len);
	ssize_t (*write)(void *ctx, const void *buf, size_t len);
	/* Bytes the transport holds already decoded (TLS); NULL for none. */
	size_t (*pending)(void *ctx);
	void (*close)(void *ctx);
};

enum pio_status {
	PIO_LINE = 0,       /* a full line, CRLF (or bare LF) stripped */
	PIO_TOOLONG,        /* line over the limit: discarded to its end */
	PIO_NUL,            /* line contained a NUL byte: discarded */
	PIO_EOF,
	PIO_TIMEOUT,
	PIO_ERROR
};

struct pio;

/* Plain transport on two fds (a socket twice, or stdin/stdout). */
struct pio *pio_new_fd(int fd_in, int fd_out);
/* Any transport; poll_fd is waited on for input and output. */
struct pio *pio_new(const struct pio_ops *ops, void *ctx, int poll_fd_in,
		    int poll_fd_out);
/* Swap the transport (after STARTTLS): the old one is closed (for fds:
 * its state freed, the fds stay open); buffered input is discarded. */
void pio_set_transport(struct pio *p, const struct pio_ops *ops, void *ctx);
void pio_free(struct pio **p);

/* Read one line of at most size-1 bytes into buf (NUL-terminated), within
 * timeout_ms of idle time (-1: none).  *len_r gets its length. */
enum pio_status pio_read_line(struct pio *p, char *buf, size_t size,
			      size_t *len_r, int timeout_ms);
/* Read exactly len bytes within timeout_ms in total.  0 or -1. */
int pio_read_exact(struct pio *p, void *buf, size_t len, int timeout_ms);
/* True when buffered input holds at least one byte. */
bool pio_input_pending(const struct pio *p);
/* Drop buffered input (bytes sent after STLS). */
void pio_discard_input(struct pio *p);

/* Buffered output; flushed when full.  0 or -1 (peer gone). */
int pio_write(struct pio *p, const void *buf, size_t len);
int pio_printf(struct pio *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int pio_flush(struct pio *p);
/* Space for direct writes into the output buffer: returns a pointer to
 * at least want bytes (flushing first if needed), or NULL on error;
 * commit with pio_commit. */
unsigned char *pio_reserve(struct pio *p, size_t want);
void pio_commit(struct pio *p, size_t len);

/* Timeout for each blocking write, ms (a client that stops reading).
 * After a write fails, all later output is dropped at once;
 * pio_write_timed_out tells whether it failed by running out of time. */
void pio_set_write_timeout(struct pio *p, int timeout_ms);
bool pio_write_timed_out(const struct pio *p);

#endif
