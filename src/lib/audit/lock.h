/* The audit log's lock: an exclusive flock on DIR/.lock, held while
 * entries are appended and while a checkpoint is computed, signed and
 * committed, so concurrent hsmsign processes never interleave entries and
 * never sign checkpoints out of order.
 *
 * A lock held by another process is waited for, up to
 * HS_AUDIT_LOCK_TIMEOUT_MS (or HSMSIGN_AUDIT_LOCK_TIMEOUT seconds from the
 * environment), then the operation fails (HS_E_AUDIT): a
 * signing command whose entry cannot be written releases nothing, and an
 * operator sees which directory is stuck rather than a hung process. */
#ifndef HSMSIGN_AUDIT_LOCK_H
#define HSMSIGN_AUDIT_LOCK_H

#include "util/result.h"

#define HS_AUDIT_LOCK_FILE ".lock"
/* Long enough for another release job's checkpoint and git commit on a
 * loaded build machine. */
#define HS_AUDIT_LOCK_TIMEOUT_MS 60000u

/* *fd gets the locked descriptor; release with hs_audit_unlock. */
hs_result hs_audit_lock(const char *dir, int *fd, hs_error *e) HS_MUST_CHECK;
void hs_audit_unlock(int fd);

#endif
