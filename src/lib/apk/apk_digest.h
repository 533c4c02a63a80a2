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
 * in memory. Its first prefix_len bytes may come from another file at the
 * same offsets (prefix_fd): the signer reads the part of its output that is
 * byte for byte the input from the input, so that it is hashed while the
 * kernel is still copying it. */
typedef struct hs_apk_section {
    int fd;
    uint64_t offset;
    uint64_t len;
    const uint8_t *mem;
    int prefix_fd;
    uint64_t prefix_len;
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

/* The same digest in steps, for a caller with other work to overlap:
 *   start: `workers` threads begin on the chunks (0: none; the callers of
 *     hs_apk_digest_work do it all). Bytes read from a section's fd, past
 *     its prefix, wait until hs_apk_digest_open: the caller is still
 *     writing them. sections (and their memory) must outlive the job.
 *   work: hashes chunks until none is left to hand out; any thread may
 *     call it, any number of times, until finish.
 *   finish: works, joins the workers, computes the digest and frees the
 *     job. No other thread may be in work by then. Without open, the job is
 *     cancelled: the chunks still waiting fail, and so does finish. */
typedef struct hs_apk_digest_job hs_apk_digest_job;
/* The default worker count: one per CPU, up to 8, the caller's thread
 * counted; minus `busy` threads of the caller's that run beside the job. */
unsigned hs_apk_digest_workers(unsigned busy);
hs_result hs_apk_digest_start(const EVP_MD *md, const hs_apk_section *sections,
                              size_t section_count, unsigned workers, const char *what,
                              hs_apk_digest_job **out, hs_error *e) HS_MUST_CHECK;
void hs_apk_digest_open(hs_apk_digest_job *job);
void hs_apk_digest_work(hs_apk_digest_job *job);
/* Unless already opened: the chunks waiting for open fail, so that the
 * threads in work return (a caller that failed writing the rest calls it
 * before joining its own helpers). */
void hs_apk_digest_cancel(hs_apk_digest_job *job);
hs_result hs_apk_digest_finish(hs_apk_digest_job *job, uint8_t *out, size_t *out_len,
                               hs_error *e) HS_MUST_CHECK;

#endif
