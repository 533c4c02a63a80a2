/* The restore ceremony: the wrap key, reconstructed from shares in locked
 * memory and matched against the transcript's check value, is imported
 * into a new token and wiped. Every key file made under the original wrap
 * key then works on that token. */
#ifndef HSMSIGN_CEREMONY_RESTORE_H
#define HSMSIGN_CEREMONY_RESTORE_H

#include "ceremony/shareset.h"
#include "keystore/wrapkey.h"
#include "p11/p11.h"

/* p: a selected, logged-in token without a wrap key of the transcript's
 * label; or, with replace, one whose wrap key is that same key without
 * the custody attributes (custody.h): the protected copy is imported and
 * the old one destroyed (*replaced counts the copies destroyed; may be
 * NULL without replace). The import is recorded in the audit log at
 * audit_dir. */
hs_result hs_ceremony_restore(hs_p11 *p, const hs_transcript *t, hs_shareset *shares,
                              const char *audit_dir, bool replace, hs_wrapkey *out,
                              size_t *replaced, hs_share_report *report,
                              hs_error *e) HS_MUST_CHECK;

/* Reconstructs and checks without importing anything (`shares verify`). */
hs_result hs_ceremony_check_shares(const hs_transcript *t, hs_shareset *shares,
                                   hs_share_report *report, hs_error *e) HS_MUST_CHECK;

#endif
