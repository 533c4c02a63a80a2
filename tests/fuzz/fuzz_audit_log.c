/* Audit log entries (entries.jsonl as read by `audit verify`, `audit
 * prove` and every checkpoint): hs_auditlog_from_bytes (lines, torn last
 * line, leaf hashes, prefix roots) and hs_auditlog_check_entries (JSON,
 * sequence numbers). */
#include <string.h>

#include "fuzz_common.h"
#include "audit/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size + 1); /* the log takes ownership */
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    hs_auditlog log;
    hs_error e;
    if (hs_auditlog_from_bytes(copy, size, &log, &e) != HS_OK)
        return 0; /* freed by the failing call */
    (void)hs_auditlog_check_entries(&log, &e);
    hs_auditlog_free(&log);
    return 0;
}
