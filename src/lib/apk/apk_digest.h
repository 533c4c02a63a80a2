/* The chunked content digest of APK Signature Scheme v2/v3.
 *
 * Sections 1, 3 and 4 of the APK are cut separately into 1 MiB chunks;
 * each chunk is hashed as H(0xa5 | u32le len | chunk) and the result is
 * H(0x5a | u32le count | chunk digests). Chunks are independent, so they
 * are hashed in parallel by a few threads, each reading its chunk with
 * pread into its own buffer: memory stays at one chunk per thread whatever
 * the APK's size. v2 and v3 use the same digest, computed once. */
#ifndef HSMSIGN_ANDROID_APK_DIGEST_H
#define HSMSIGN_ANDROID_APK_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "util/result.h"

#define HS_APK_CHUNK_SIZE (1024u * 1024u)

/* A section is either a byte range of an open file (mem == NULL) or bytes
 * in memory. */
typedef struct hs_apk_section {
    int fd;
    uint64_t offset;
    uint64_t len;
    const uint8_t *mem;
} hs_apk_section;

/* Work for the calling thread while the workers hash: the signer hashes
 * the whole input sequentially (its SHA-256) at the same time, so that on
 * two cores both passes cost the time of one. run returns false on
 * failure; fail then reports it. */
typedef struct hs_apk_side_task {
    bool (*run)(void *ctx);
    hs_result (*fail)(void *ctx, hs_error *e);
    void *ctx;
} hs_apk_side_task;

/* out must hold EVP_MAX_MD_SIZE bytes; what names the file in errors;
 * side may be NULL. */
hs_result hs_apk_content_digest(const EVP_MD *md, const hs_apk_section *sections,
                                size_t section_count, const hs_apk_side_task *side,
                                const char *what, uint8_t *out, size_t *out_len,
                                hs_error *e) HS_MUST_CHECK;

#endif
