/* Gathering the shares holders bring to a restore or a check: age-
 * encrypted share files (decrypted with the holders' identities), plain
 * share files, and plain shares piped in (decrypted by the holders
 * themselves with the age CLI). Each is checked against the transcript
 * (share set, threshold, file hash) and either kept or set aside with a
 * reason that names it; then the wrap key is reconstructed in locked
 * memory and matched with the transcript's check value. */
#ifndef HSMSIGN_CEREMONY_SHARESET_H
#define HSMSIGN_CEREMONY_SHARESET_H

#include "backup/share.h"
#include "ceremony/transcript.h"

#define HS_SHARESET_MAX 64u /* inputs in one restore: far more than any k */
#define HS_SHARESET_NOTES 8192u

typedef struct hs_shareset {
    size_t count;
    hs_share *shares;                   /* hs_secure_alloc, HS_SHARESET_MAX entries */
    char source[HS_SHARESET_MAX][300];  /* where shares[i] came from, for messages */
    size_t set_aside;                   /* inputs not usable at all */
    size_t forged;                      /* of those, shares differing from their commitment */
    char notes[HS_SHARESET_NOTES];      /* one line per input set aside or questionable */
} hs_shareset;

hs_result hs_shareset_init(hs_shareset *s, hs_error *e) HS_MUST_CHECK;
/* Wipes and frees the shares. */
void hs_shareset_clear(hs_shareset *s);

/* Adds a share file: encrypted with age (tried with every identity) or a
 * plain "hsmsign-share v1" text. A file that cannot be used is set aside
 * (a note, not an error); errors are for I/O and memory. */
hs_result hs_shareset_add_file(hs_shareset *s, const hs_transcript *t, const char *path,
                               const char *const *identities, size_t n_identities,
                               hs_error *e) HS_MUST_CHECK;

/* Adds one or more plain shares concatenated in text (from a pipe). */
hs_result hs_shareset_add_text(hs_shareset *s, const hs_transcript *t, const char *text,
                               size_t len, const char *source, hs_error *e) HS_MUST_CHECK;

/* All of a restore's inputs at once: the identity files (age-keygen
 * format) are read, every share file added, and with stdin_fd >= 0 the
 * plain shares piped in on that descriptor. */
hs_result hs_shareset_gather(hs_shareset *s, const hs_transcript *t,
                             const char *const *share_paths, size_t n_shares,
                             const char *const *identity_paths, size_t n_identity_files,
                             int stdin_fd, hs_error *e) HS_MUST_CHECK;

/* Reconstructs the wrap key into key (32 bytes, the caller's locked
 * memory) and checks it against the transcript's check value. On failure
 * the message names the shares at fault and the inputs set aside.
 * report->warning (and s->notes) list what must be shown even on success. */
hs_result hs_shareset_recover(hs_shareset *s, const hs_transcript *t, uint8_t key[32],
                              hs_share_report *report, hs_error *e) HS_MUST_CHECK;

#endif
