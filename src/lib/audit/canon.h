/* The fast path of `audit verify`'s per-entry check (log.c,
 * hs_auditlog_check_entry): a line exactly as record.c writes it
 * (json_dumps with JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII) is
 * recognised without building a JSON tree. Internal to src/lib/audit. */
#ifndef HSMSIGN_AUDIT_CANON_H
#define HSMSIGN_AUDIT_CANON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when line[0..len) is one JSON object in the canonical form (no
 * whitespace, keys strictly increasing at every level, so none repeated,
 * printable ASCII strings with only the short escapes, integers of at
 * most 18 digits, true/false/null, nested objects; no arrays, no
 * fractions, no \u) whose top-level "seq" is an integer, stored in *seq.
 * Every line accepted here is one jansson accepts with
 * JSON_REJECT_DUPLICATES, with the same "seq"; false says nothing: the
 * caller then parses the line with jansson, which decides and words the
 * error. */
bool hs_auditline_canonical_seq(const char *line, size_t len, int64_t *seq);

#endif
