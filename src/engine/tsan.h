/* SPDX-License-Identifier: MIT */
/*
 * ThreadSanitizer cannot see Concurrency Kit's atomics on x86-64 (inline assembly): where
 * a ck operation is what orders two threads, these tell it so. No code otherwise.
 */
#ifndef SALVO_TSAN_H
#define SALVO_TSAN_H

#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define sv_tsan_acquire(addr) __tsan_acquire((void *)(addr))
#define sv_tsan_release(addr) __tsan_release((void *)(addr))
#else
#define sv_tsan_acquire(addr) ((void)(addr))
#define sv_tsan_release(addr) ((void)(addr))
#endif

#endif
