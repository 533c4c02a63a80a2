/* C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint) bodies: the text of the
 * signed note that commits to the log's Merkle tree.
 *
 *   <origin>\n            e.g. "hsmsign.audit/<token serial>"
 *   <tree size>\n         decimal, no leading zeros
 *   <base64 root>\n       RFC 6962 root of the first <tree size> entries
 *
 * Extension lines are allowed by the spec; hsmsign writes none and
 * ignores any it reads. */
#ifndef HSMSIGN_AUDIT_CHECKPOINT_H
#define HSMSIGN_AUDIT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "audit/merkle.h"
#include "util/result.h"

#define HS_CHECKPOINT_ORIGIN_MAX 256

typedef struct hs_checkpoint {
    char origin[HS_CHECKPOINT_ORIGIN_MAX];
    uint64_t size;
    uint8_t root[HS_MERKLE_HASH_LEN];
} hs_checkpoint;

/* The checkpoint's note text; *text is malloc'd. */
hs_result hs_checkpoint_format(const hs_checkpoint *c, char **text, hs_error *e) HS_MUST_CHECK;

/* Parses a note text (the part a signature covers). HS_E_FORMAT when it
 * is not a checkpoint. */
hs_result hs_checkpoint_parse(const char *text, size_t len, hs_checkpoint *c,
                              hs_error *e) HS_MUST_CHECK;

#endif
