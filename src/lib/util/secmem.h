/* Memory for secrets: PINs, plaintext keys, shares.
 *
 * hs_secure_alloc returns page-backed memory that is locked (mlock, so it
 * is never swapped) and excluded from core dumps (MADV_DONTDUMP) where the
 * system allows; hs_secure_free wipes it before releasing it. When locking
 * is not permitted (RLIMIT_MEMLOCK), the memory is still wiped on free and
 * hs_secure_locked() reports false so callers can say so. */
#ifndef HSMSIGN_UTIL_SECMEM_H
#define HSMSIGN_UTIL_SECMEM_H

#include <stdbool.h>
#include <stddef.h>

void *hs_secure_alloc(size_t len);
void hs_secure_free(void *p, size_t len);
bool hs_secure_locked(const void *p);

/* Wipes len bytes in a way the compiler cannot drop. */
void hs_wipe(void *p, size_t len);

/* Stops this process from writing core dumps or being ptrace-attached by
 * other users: a crash must not leave secrets on disk. */
void hs_harden_process(void);

#endif
