/* Shared between the apk_sign*.c units: the output writer and the entry
 * copier. Not a public API. */
#ifndef HSMSIGN_ANDROID_APK_SIGN_INTERNAL_H
#define HSMSIGN_ANDROID_APK_SIGN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "android/zip.h"
#include "util/file.h"
#include "util/result.h"

#define HS_APK_OUT_BUF 262144u
#define HS_APK_DROPPED UINT64_MAX

/* The output APK: a temporary file (hs_atomic_*) written front to back,
 * with the SHA-256 of everything written kept on the way for the report. */
typedef struct hs_apk_out {
    hs_atomic_file af;
    bool open;
    EVP_MD_CTX *sha;
    uint64_t pos;      /* bytes written so far (including buffered) */
    uint8_t *buf;
    size_t buf_len;
} hs_apk_out;

hs_result hs_apk_out_open(hs_apk_out *o, const char *path, hs_error *e) HS_MUST_CHECK;
hs_result hs_apk_out_write(hs_apk_out *o, const void *data, size_t len, hs_error *e) HS_MUST_CHECK;
hs_result hs_apk_out_zeros(hs_apk_out *o, size_t len, hs_error *e) HS_MUST_CHECK;
/* Pushes buffered bytes to the file so they can be read back with pread. */
hs_result hs_apk_out_flush(hs_apk_out *o, hs_error *e) HS_MUST_CHECK;
/* Flushes and finishes the output's SHA-256; then commit renames it. */
hs_result hs_apk_out_finish(hs_apk_out *o, uint8_t sha256[32], hs_error *e) HS_MUST_CHECK;
hs_result hs_apk_out_commit(hs_apk_out *o, hs_error *e) HS_MUST_CHECK;
/* Removes the temporary file unless committed; always safe to call. */
void hs_apk_out_abort(hs_apk_out *o);

/* True for entries a signer must keep: everything except directories and
 * the JAR signature files in META-INF/ (MANIFEST.MF, *.SF, *.RSA, *.DSA,
 * *.EC, SIG-*), which apksig also leaves out of MANIFEST.MF. */
bool hs_apk_entry_is_signed_content(const char *name, size_t name_len);

typedef struct hs_apk_copy_result {
    uint64_t *new_lfh_offset;  /* per entry in CD order; HS_APK_DROPPED when left out */
    uint16_t newest_time, newest_date; /* latest kept entry, for entries the signer adds */
} hs_apk_copy_result;

/* Copies the kept entries (local header + data + descriptor) in file order,
 * and any bytes between them verbatim, re-aligning stored entries through
 * the 0xd935 extra field as apksig does. */
hs_result hs_apk_copy_entries(const hs_zip *z, bool alignment_preserved, hs_apk_out *o,
                              hs_apk_copy_result *res, hs_error *e) HS_MUST_CHECK;

#endif
