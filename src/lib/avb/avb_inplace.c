#include "avb/avb_inplace.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "avb/avb_bytes.h"
#include "avb/avb_info.h"
#include "util/encoding.h"

/* The pending record: the last 64 bytes of the file while an in-place
 * footer is being written. Its magic differs from "AVBf" in the first four
 * bytes, so every AVB reader sees "no footer". */
#define PENDING_MAGIC "hsmsign-avb-pend"
#define PENDING_SIZE 64

static void pending_encode(uint64_t original_size, uint64_t partition_size,
                           uint8_t rec[PENDING_SIZE])
{
    memcpy(rec, PENDING_MAGIC, 16);
    hs_avb_put_be64(rec + 16, original_size);
    hs_avb_put_be64(rec + 24, partition_size);
    SHA256(rec, 32, rec + 32);
}

hs_result hs_avb_inplace_pending(int fd, const char *path, uint64_t file_size, bool *pending,
                                 uint64_t *original_size, hs_error *e)
{
    uint8_t rec[PENDING_SIZE], want[PENDING_SIZE];
    *pending = false;
    if (file_size < HS_AVB_BLOCK_SIZE)
        return HS_OK;
    hs_result r = hs_avb_pread_all(fd, rec, sizeof rec, file_size - PENDING_SIZE, path, e);
    if (r != HS_OK || memcmp(rec, PENDING_MAGIC, 16) != 0)
        return r;
    uint64_t orig = hs_avb_get_be64(rec + 16), part = hs_avb_get_be64(rec + 24);
    pending_encode(orig, part, want);
    /* Only a record that describes this very file: a stray copy inside an
     * image's data, or one cut short, is just data. */
    if (part != file_size || orig > part - HS_AVB_BLOCK_SIZE ||
        !hs_ct_equal(rec, want, sizeof rec))
        return HS_OK;
    *pending = true;
    *original_size = orig;
    return HS_OK;
}

static hs_result sync_fd(int fd, const char *path, hs_error *e)
{
    if (fdatasync(fd) != 0)
        return hs_fail(e, HS_E_IO, "%s: fdatasync failed: %s", path, strerror(errno));
    return HS_OK;
}

static hs_result cut_back(int fd, const char *path, uint64_t size, hs_error *e)
{
    if (ftruncate(fd, (off_t)size) != 0)
        return hs_fail(e, HS_E_IO, "%s: cannot cut back to %llu bytes: %s", path,
                       (unsigned long long)size, strerror(errno));
    return sync_fd(fd, path, e);
}

hs_result hs_avb_inplace_begin(hs_avb_inplace *ip, int fd, const char *path,
                               uint64_t original_size, uint64_t partition_size, hs_error *e)
{
    memset(ip, 0, sizeof *ip);
    ip->fd = fd;
    ip->path = path;
    ip->original_size = original_size;
    ip->partition_size = partition_size;
    if (partition_size % HS_AVB_BLOCK_SIZE != 0 ||
        original_size > partition_size - HS_AVB_BLOCK_SIZE)
        return hs_fail(e, HS_E_INTERNAL, "%s: in-place footer outside the partition", path);
    off_t end = lseek(fd, 0, SEEK_END);
    /* A file longer than its original bytes is the pending tail of an
     * interrupted write (the caller found the record): cut it back first,
     * durably, so no crash from here on leaves two records' worth of tail. */
    hs_result r = HS_OK;
    if (end < 0 || (uint64_t)end != original_size)
        r = cut_back(fd, path, original_size, e);
    uint8_t block[HS_AVB_BLOCK_SIZE];
    memset(block, 0, sizeof block);
    pending_encode(original_size, partition_size, block + sizeof block - PENDING_SIZE);
    if (r == HS_OK)
        r = hs_avb_pwrite_all(fd, block, sizeof block, partition_size - sizeof block, path, e);
    ip->begun = true; /* from the write on, a failure must cut back */
    if (r == HS_OK)
        r = sync_fd(fd, path, e);
    if (r == HS_OK)
        hs_avb_inplace_crash_point(1);
    return r;
}

hs_result hs_avb_inplace_publish(hs_avb_inplace *ip, const uint8_t footer[64], hs_error *e)
{
    hs_result r = sync_fd(ip->fd, ip->path, e);
    if (r == HS_OK)
        hs_avb_inplace_crash_point(3);
    /* One 64-byte write at the end of a 4096-aligned file lies in one
     * sector: after a crash the disk holds the record or the footer. */
    if (r == HS_OK)
        r = hs_avb_pwrite_all(ip->fd, footer, PENDING_SIZE, ip->partition_size - PENDING_SIZE,
                              ip->path, e);
    if (r == HS_OK) {
        ip->published = true; /* visible now: never cut back after this */
        hs_avb_inplace_crash_point(4);
        r = sync_fd(ip->fd, ip->path, e);
    }
    return r;
}

void hs_avb_inplace_rollback(hs_avb_inplace *ip)
{
    hs_error ignored;
    if (ip->begun && !ip->published)
        (void)cut_back(ip->fd, ip->path, ip->original_size, &ignored);
    ip->begun = false;
}

void hs_avb_inplace_crash_point(int step)
{
#ifdef HSMSIGN_TEST_HOOKS
    const char *v = getenv("HSMSIGN_TEST_AVB_CRASH_STEP");
    if (v != NULL && atoi(v) == step)
        raise(SIGKILL);
#else
    (void)step;
#endif
}
