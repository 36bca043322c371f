/* testtlspart.c: a TLS part of another ABI version, for the test that
 * poplard refuses it (never installed; the test copies it into a module
 * directory as tls-openssl.so).  Its functions are never called. */
#include "tls_part.h"

const struct tls_part poplar_tls_part = {
	.abi = TLS_PART_ABI + 1,
	.name = "openssl",
};
