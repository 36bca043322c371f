/* asan.h: POPLAR_ASAN is defined in a build with AddressSanitizer (and
 * so LeakSanitizer), by GCC's or Clang's way of saying so. */
#ifndef POPLAR_ASAN_H
#define POPLAR_ASAN_H

#if defined(__SANITIZE_ADDRESS__)
#define POPLAR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POPLAR_ASAN 1
#endif
#endif

#endif
