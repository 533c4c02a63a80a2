/* JAR (v1) signing of an APK: META-INF/MANIFEST.MF, <NAME>.SF and the
 * PKCS#7 signature block <NAME>.RSA / .EC, as apksig's V1SchemeSigner
 * writes them. Entries are hashed on the host; the only signature is over
 * the .SF file, obtained with one hs_sign_fn call. */
#ifndef HSMSIGN_ANDROID_JAR_SIGN_H
#define HSMSIGN_ANDROID_JAR_SIGN_H

#include <stdbool.h>
#include <stdint.h>

#include "apk/apk.h"
#include "apk/apk_buf.h"
#include "apk/apk_sign_internal.h"
#include "zip/zip.h"

typedef struct hs_jar_sign_params {
    const hs_zip *zip;
    const uint64_t *kept_lfh_offset; /* per entry; HS_APK_DROPPED for entries left out */
    int min_sdk;                     /* >= 18: SHA-256 digests, else SHA-1 */
    bool v2, v3;                     /* for X-Android-APK-Signed */
    const hs_apk_key *key;
    hs_sign_fn sign;
    const char *artifact;
    const uint8_t *artifact_sha256;
    uint16_t mod_time, mod_date;     /* DOS timestamp for the new entries */
    const char *created_by;          /* .SF Created-By; NULL: apksigner's "1.0 (Android)" */
} hs_jar_sign_params;

/* The new entries' central directory records, to append to the CD. */
typedef struct hs_jar_entries {
    hs_apk_buf cd;
    size_t count;
} hs_jar_entries;

/* Writes the three v1 files as new entries at the output's current end. */
hs_result hs_jar_sign_append(const hs_jar_sign_params *p, hs_apk_out *out, hs_jar_entries *added,
                             hs_error *e) HS_MUST_CHECK;
void hs_jar_entries_free(hs_jar_entries *added);

/* The three v1 files' names and bytes, for a writer that lays out its own
 * entries (signapk.c), in apksig's order: .SF, signature block, manifest. */
typedef struct hs_jar_files {
    char name[3][32];
    hs_apk_buf data[3];
} hs_jar_files;
hs_result hs_jar_sign_build(const hs_jar_sign_params *p, hs_jar_files *out,
                            hs_error *e) HS_MUST_CHECK;
void hs_jar_files_free(hs_jar_files *f);

/* Appends a new entry as apksig writes the ones it adds: deflated like
 * Java's Deflater(9, nowrap), local header at the output's end, its CD
 * record added to `added` (also used for pinlist.meta). */
hs_result hs_jar_write_new_entry(const char *path, const char *name, const hs_apk_buf *data,
                                 uint16_t mod_time, uint16_t mod_date, hs_apk_out *out,
                                 hs_jar_entries *added, hs_error *e) HS_MUST_CHECK;

#endif
