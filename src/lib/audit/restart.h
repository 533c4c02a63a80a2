/* Starting an audit log over, deliberately (`hsmsign audit restart`): the
 * disaster-recovery path when a log cannot be continued (its audit key is
 * lost with a token, its files were damaged or removed). Never implicit.
 *
 * The old directory is kept, renamed to DIR.before-restart-<UTC time>,
 * never deleted. The new log's first entry ("op":"audit-restart") records
 * the reason and what the old log held: its entry count, the SHA-256 of
 * its entries file, and its latest checkpoint's size and root (and
 * whether that verifies with the audit key) when it had one; the new
 * log's first checkpoint (size 1) signs it. */
#ifndef HSMSIGN_AUDIT_RESTART_H
#define HSMSIGN_AUDIT_RESTART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/log.h"
#include "audit/record.h"

typedef struct hs_audit_restart_result {
    char old_dir[4200];     /* where the old log now is */
    size_t old_entries;
    bool old_checkpoint;    /* it had a parseable checkpoint */
    bool old_verified;      /* ... that verifies with this audit key */
    uint64_t old_size;
    hs_checkpoint_result cp; /* the new log's first checkpoint */
} hs_audit_restart_result;

/* Builds the new log (hs_auditlog_init, the restart entry, its checkpoint)
 * under the temporary name DIR.before-restart-<time>, then swaps the two
 * directories in one renameat2(RENAME_EXCHANGE) under the old log's lock:
 * a kill before the swap leaves DIR untouched, after it the new log whole.
 * ctx->audit_key and ctx->p11 (logged in) are required. HS_E_NOTFOUND when
 * DIR does not exist (that is `audit init`). */
hs_result hs_auditlog_restart(const char *dir, const hs_audit_context *ctx, const char *reason,
                              hs_audit_restart_result *res, hs_error *e) HS_MUST_CHECK;

#endif
