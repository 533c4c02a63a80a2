#include "util/secmem.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Each allocation is its own mapping with a small header recording the
 * mapping length and whether mlock succeeded. */
typedef struct {
    size_t map_len;
    int locked;
} secure_header;

#define HEADER_SIZE 64 /* keeps the user pointer 64-byte aligned */

/* The system calls themselves, not libc's wrappers: AddressSanitizer
 * intercepts mlock and munlock and makes them succeed without locking
 * anything, so a sanitized build would report memory as locked when it is
 * not (and the ceremony's refusal could not be tested there). */
static bool lock_pages(void *base, size_t len)
{
    return syscall(SYS_mlock, base, len) == 0;
}

static void unlock_pages(void *base, size_t len)
{
    (void)syscall(SYS_munlock, base, len);
}

static size_t page_round(size_t n)
{
    long ps = sysconf(_SC_PAGESIZE);
    size_t page = ps > 0 ? (size_t)ps : 4096;
    return (n + page - 1) / page * page;
}

void *hs_secure_alloc(size_t len)
{
    if (len > SIZE_MAX - HEADER_SIZE - 65536)
        return NULL;
    size_t map_len = page_round(len + HEADER_SIZE);
    void *base = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    secure_header *h = base;
    h->map_len = map_len;
    h->locked = lock_pages(base, map_len);
#ifdef MADV_DONTDUMP
    (void)madvise(base, map_len, MADV_DONTDUMP);
#endif
    return (uint8_t *)base + HEADER_SIZE;
}

void hs_secure_free(void *p, size_t len)
{
    (void)len;
    if (p == NULL)
        return;
    uint8_t *base = (uint8_t *)p - HEADER_SIZE;
    secure_header *h = (secure_header *)base;
    size_t map_len = h->map_len;
    int locked = h->locked;
    hs_wipe(base, map_len);
    if (locked)
        unlock_pages(base, map_len);
    munmap(base, map_len);
}

bool hs_secure_locked(const void *p)
{
    if (p == NULL)
        return false;
    const secure_header *h = (const secure_header *)((const uint8_t *)p - HEADER_SIZE);
    return h->locked != 0;
}

void hs_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        explicit_bzero(p, len);
}

void hs_harden_process(void)
{
    struct rlimit no_core = {0, 0};
    (void)setrlimit(RLIMIT_CORE, &no_core);
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
