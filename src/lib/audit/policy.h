/* `audit policy`: which key may sign which artifacts, and how many
 * artifacts each key signs per release (a batch id), checked against the
 * log's entries. Policy format (docs/audit-log.md):
 *
 *   {"version": 1,
 *    "keys": {"platform": {"artifacts": ["*.apk"], "per_release": 3},
 *             "releasekey": {"artifacts": ["*.apk", "*.zip"]}}}
 *
 * Patterns are fnmatch(3) patterns over the artifact's file name. */
#ifndef HSMSIGN_AUDIT_POLICY_H
#define HSMSIGN_AUDIT_POLICY_H

#include <stddef.h>

#include "util/result.h"

typedef struct hs_policy_report {
    size_t signatures;  /* sign entries with an artifact that were examined */
    size_t batches;     /* releases whose counts were checked */
    size_t violations;
    char **messages;    /* one per violation, malloc'd */
} hs_policy_report;

/* batch: only that release's entries, or NULL for every release in the
 * log. HS_OK with rep->violations > 0 when the log breaks the policy;
 * HS_E_FORMAT for a malformed policy. */
hs_result hs_audit_policy_check(const char *log_dir, const char *policy_path, const char *batch,
                                hs_policy_report *rep, hs_error *e) HS_MUST_CHECK;
void hs_policy_report_free(hs_policy_report *rep);

#endif
