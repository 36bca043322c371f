/* dlflags.h: the dlopen flags of the shared objects poplard loads itself:
 * modules, the TLS part and the pass module's backends. */
#ifndef POPLAR_DLFLAGS_H
#define POPLAR_DLFLAGS_H

#include <dlfcn.h>
#include "asan.h"

/* Symbols resolved at load time (a missing one is a load error, not a
 * crash in a session), and kept out of the global namespace. */
#define POPLAR_DLOPEN_BASE (RTLD_NOW | RTLD_LOCAL)

/* In an AddressSanitizer build, dlclose leaves the object mapped
 * (RTLD_NODELETE).  LeakSanitizer reports at exit, after the modules
 * were unloaded, and cannot name code that is no longer mapped: its
 * stacks would show "<unknown module>" for every frame of a module.
 * poplard unloads modules only on its way out, so keeping them mapped
 * changes nothing else. */
#ifdef POPLAR_ASAN
#define POPLAR_DLOPEN_FLAGS (POPLAR_DLOPEN_BASE | RTLD_NODELETE)
#else
#define POPLAR_DLOPEN_FLAGS POPLAR_DLOPEN_BASE
#endif

#endif
