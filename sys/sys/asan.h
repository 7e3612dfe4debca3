// Marking free memory for AddressSanitizer: an allocator that keeps freed
// items (UMA buckets, the page pool) poisons them, so a use after free is
// reported even though the memory never goes back to malloc. Without ASan
// the macros compile to nothing.
#ifndef UKTLS_SYS_SYS_ASAN_H_
#define UKTLS_SYS_SYS_ASAN_H_

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UK_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(UK_ASAN)
#define UK_ASAN 1
#endif

#ifdef UK_ASAN
#include <sanitizer/asan_interface.h>
#define UK_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UK_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define UK_POISON(p, n) ((void)(p), (void)(n))
#define UK_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#endif  // UKTLS_SYS_SYS_ASAN_H_
