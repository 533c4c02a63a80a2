/* Crash-safe in-place footers: the protocol of docs/avb.md, "In-place
 * footers and crashes".
 *
 * An image without an AVB footer keeps its inode (callers such as
 * releasetools may hold it open) and its bytes [0, original_size): the new
 * tail (hash tree, vbmeta, footer block) only ever lands past the old end.
 *   1. begin:   the last 64 bytes of the partition get a pending record
 *               (magic, original size, partition size, SHA-256 of those),
 *               which extends the file; fdatasync.
 *   2.          the hash tree and the vbmeta struct are written at their
 *               final offsets (the signature, and so its durable audit
 *               entry, comes before the vbmeta).
 *   3. publish: fdatasync, then the 64-byte footer replaces the pending
 *               record in one write inside one sector; fdatasync.
 * Until 3 the file ends with the pending record, not "AVBf": avbtool and
 * hsmsign see an image without a footer, as before, with its original
 * bytes intact. hs_avb_inplace_pending() recognises the record so the next
 * footer command rolls the file back to its original size first (and
 * hashes only the original bytes); an error before 3 rolls back at once. */
#ifndef HSMSIGN_AVB_INPLACE_H
#define HSMSIGN_AVB_INPLACE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/result.h"

typedef struct hs_avb_inplace {
    int fd;                  /* the image, opened for writing; not owned */
    const char *path;
    uint64_t original_size;  /* bytes kept; the file is cut back to this on rollback */
    uint64_t partition_size; /* final file size */
    bool begun, published;
} hs_avb_inplace;

/* True (and *original_size set) when the file of file_size bytes ends with
 * a valid pending record of an interrupted in-place write. */
hs_result hs_avb_inplace_pending(int fd, const char *path, uint64_t file_size, bool *pending,
                                 uint64_t *original_size, hs_error *e) HS_MUST_CHECK;

/* Step 1: cuts the file back to original_size (an earlier interrupted
 * write), writes the pending record's block and makes it durable. */
hs_result hs_avb_inplace_begin(hs_avb_inplace *ip, int fd, const char *path,
                               uint64_t original_size, uint64_t partition_size,
                               hs_error *e) HS_MUST_CHECK;

/* Step 3: makes everything written so far durable, then writes the 64-byte
 * footer over the pending record and makes it durable. */
hs_result hs_avb_inplace_publish(hs_avb_inplace *ip, const uint8_t footer[64],
                                 hs_error *e) HS_MUST_CHECK;

/* After a failure before publish: cuts the file back to its original size
 * (best effort; a crash here is recovered by the next begin). No-op when
 * nothing was begun or the footer was published. */
void hs_avb_inplace_rollback(hs_avb_inplace *ip);

/* Crash tests only (tests/integration/test_avb_crash.sh): with
 * HSMSIGN_TEST_AVB_CRASH_STEP=K in the environment, the process kills
 * itself (SIGKILL) at step K. Compiled only into builds with the test
 * suite (-Dtests=true defines HSMSIGN_TEST_HOOKS); otherwise a no-op.
 * Steps: 1 pending record durable, 2 hash tree written / image hashed,
 * 3 vbmeta written and synced, 4 footer written, not yet synced. */
void hs_avb_inplace_crash_point(int step);

#endif
