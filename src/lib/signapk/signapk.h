/* AOSP signapk's output, byte for byte: SignApk.java rewrites the whole
 * archive through java.util.jar.JarOutputStream (names sorted, stored
 * entries first and aligned with a 0xd935 extra field, everything else
 * re-deflated, every time 2009-01-01 00:00, data descriptors), adds the v1
 * files apksig's engine makes (Created-By "1.0 (Android SignApk)") and
 * then the v2/v3 signing block. With whole_file (-w) it is the OTA layout
 * instead: no v1 files, META-INF/com/android/otacert added, and a detached
 * PKCS#7 signature over the archive (without the comment length) in the
 * zip comment.
 *
 * The output is built in memory and handed back: the caller decides how
 * it reaches the disk (in place for callers that hold OUT open). Every
 * signature goes through the hs_sign_fn. */
#ifndef HSMSIGN_ANDROID_SIGNAPK_H
#define HSMSIGN_ANDROID_SIGNAPK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apk/apk.h"
#include "apk/apk_buf.h"
#include "signer/sign_fn.h"
#include "util/result.h"

typedef struct hs_signapk_options {
    int alignment;            /* -a N: stored entries' data alignment (signapk's default 4) */
    bool align_file_size;     /* --align-file-size: pad the EOCD comment to a multiple of N */
    /* Alignment of stored .so entries when alignment > 0: AOSP main's
     * 16384 (the default); Debian's signapk 10 uses 4096. */
    int so_alignment;
    int min_sdk;              /* --min-sdk-version; -1: from AndroidManifest.xml */
    bool v2;                  /* false: --disable-v2 */
    bool whole_file;          /* -w: OTA package */
    const uint8_t *otacert;   /* -w: the CERT file's bytes, stored as META-INF/com/android/otacert */
    size_t otacert_len;
    const char *artifact;     /* input path for the audit entries; NULL: the input path */
} hs_signapk_options;

/* alignment 4, so_alignment 16384, min_sdk -1, v2 on. */
void hs_signapk_options_init(hs_signapk_options *opt);

typedef struct hs_signapk_result {
    hs_apk_buf out;           /* the whole output file */
    int min_sdk;              /* -1 for -w */
    unsigned signatures;
    uint8_t input_sha256[32], output_sha256[32];
} hs_signapk_result;

hs_result hs_signapk_sign(const char *in, const hs_apk_key *key, const hs_signapk_options *opt,
                          hs_sign_fn sign, hs_signapk_result *res, hs_error *e) HS_MUST_CHECK;
void hs_signapk_result_free(hs_signapk_result *res);

#endif
