/* Inclusion proofs in the c2sp.org/tlog-proof@v1 text format, checkable
 * offline with the auditor's public key alone:
 *
 *   c2sp.org/tlog-proof@v1
 *   extra <base64 of the entry line>    the entry itself, so the proof
 *                                       says what was signed
 *   index <N>
 *   <base64 hash>                       the inclusion path, one per line
 *   ...
 *   <blank line>
 *   <the signed checkpoint note>
 */
#ifndef HSMSIGN_AUDIT_PROOF_H
#define HSMSIGN_AUDIT_PROOF_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/checkpoint.h"
#include "audit/log.h"
#include "util/result.h"

#define HS_TLOG_PROOF_HEADER "c2sp.org/tlog-proof@v1"

/* The proof for entry `index` of the log against the signed checkpoint
 * note (which must cover it). *text is malloc'd. */
hs_result hs_proof_make(const hs_auditlog *log, size_t index, const char *note, size_t note_len,
                        char **text, hs_error *e) HS_MUST_CHECK;

typedef struct hs_proof_result {
    hs_checkpoint cp;
    uint64_t index;
    char *entry; /* malloc'd, NUL-terminated */
    size_t entry_len;
} hs_proof_result;

/* Verifies a proof: the checkpoint's signature with pub (key name = its
 * origin), and the entry's inclusion at index under its root. */
hs_result hs_proof_verify(const char *text, size_t len, EVP_PKEY *pub, hs_proof_result *res,
                          hs_error *e) HS_MUST_CHECK;
void hs_proof_result_free(hs_proof_result *res);

#endif
