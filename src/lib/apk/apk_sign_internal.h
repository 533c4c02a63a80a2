/* Shared between the apk_sign*.c units: the output writer and the entry
 * copier. Not a public API. */
#ifndef HSMSIGN_ANDROID_APK_SIGN_INTERNAL_H
#define HSMSIGN_ANDROID_APK_SIGN_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "apk/apk_buf.h"
#include "zip/zip.h"
#include "util/file.h"
#include "util/result.h"

#define HS_APK_OUT_BUF 262144u
#define HS_APK_DROPPED UINT64_MAX

/* The output APK: a temporary file (hs_atomic_*) written front to back
 * (apk_out.c). Bytes copied from the input at their own offset, before any
 * byte of ours, form the prefix shared with the input (shared_end). */
typedef struct hs_apk_out {
    hs_atomic_file af;
    bool open;
    uint64_t pos;        /* bytes written so far (including buffered) */
    uint64_t shared_end; /* output[0, shared_end) == input[0, shared_end) */
    bool diverged;       /* a byte not at its input offset has been written */
    bool no_copy_range;  /* copy_file_range refused these files: write() */
    const hs_zip *pend_src; /* input range not yet copied (coalesced) */
    uint64_t pend_off, pend_len;
    uint8_t *buf;
    size_t buf_len;
    pthread_t syncer;    /* hs_apk_out_start_sync's thread */
    bool syncing;        /* syncer runs or is not yet joined */
    int sync_err;        /* its fdatasync's errno, 0: none */
} hs_apk_out;

hs_result hs_apk_out_open(hs_apk_out *o, const char *path, hs_error *e) HS_MUST_CHECK;
hs_result hs_apk_out_write(hs_apk_out *o, const void *data, size_t len, hs_error *e) HS_MUST_CHECK;
hs_result hs_apk_out_zeros(hs_apk_out *o, size_t len, hs_error *e) HS_MUST_CHECK;
/* Appends input bytes [off, off + len) by copy_file_range (write() where
 * the kernel cannot), extending the shared prefix when off == pos. */
hs_result hs_apk_out_copy_input(hs_apk_out *o, const hs_zip *z, uint64_t off, uint64_t len,
                                hs_error *e) HS_MUST_CHECK;
/* Pushes buffered bytes to the file so they can be read back with pread. */
hs_result hs_apk_out_flush(hs_apk_out *o, hs_error *e) HS_MUST_CHECK;
/* Asks the kernel to start writing what is in the file so far. */
void hs_apk_out_start_writeback(hs_apk_out *o);
/* Makes what is in the file so far durable on a thread of its own
 * (fdatasync), while the caller hashes: the fsync before the rename then
 * only waits for the rest. Below HS_APK_EARLY_SYNC_MIN bytes, or without a
 * thread, hs_apk_out_start_writeback instead. */
#define HS_APK_EARLY_SYNC_MIN (16u * 1024u * 1024u)
void hs_apk_out_start_sync(hs_apk_out *o);
/* Joins the thread of hs_apk_out_start_sync; its failure is the file's
 * (a write-back error is reported once per open file: not again by the
 * fsync that follows). Call before moving o; commit and abort call it. */
hs_result hs_apk_out_end_sync(hs_apk_out *o, hs_error *e) HS_MUST_CHECK;
/* Flushes and computes the SHA-256 the output will have once `tail` (not
 * yet written) follows what is in the file: shared_prefix is the SHA-256
 * state after input[0, shared_end); the rest of the file is read back. */
hs_result hs_apk_out_finish(hs_apk_out *o, const EVP_MD_CTX *shared_prefix,
                            const hs_apk_buf *const *tail, size_t tail_count, uint8_t sha256[32],
                            hs_error *e) HS_MUST_CHECK;
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
    /* The input has assets/com.android.hints.pins.txt: the byte ranges of
     * the kept entries its patterns name, as pinlist.meta holds them
     * (big-endian u32 start, u32 length each), without the last one. */
    bool pins;
    hs_apk_buf pin_ranges;
} hs_apk_copy_result;

#define HS_APK_PIN_LIST_ENTRY "pinlist.meta"

/* Appends the range [start, end) as pinlist.meta encodes it (apksig's
 * Hints.encodeByteRangeList: each number clamped to 0..INT32_MAX). */
void hs_apk_pin_range(hs_apk_buf *b, uint64_t start, uint64_t end);

/* The input's pin hint patterns (apk_pins.c); *out stays NULL when the
 * APK has no assets/com.android.hints.pins.txt. */
typedef struct hs_apk_pins hs_apk_pins;
hs_result hs_apk_pins_load(const hs_zip *z, hs_apk_pins **out, hs_error *e) HS_MUST_CHECK;
/* A kept entry now at output offset lfh, its data at [data, end): appends
 * the ranges its matching patterns name, then its header's, to ranges. */
void hs_apk_pins_entry(const hs_apk_pins *pins, const hs_zip_entry *ent, uint64_t lfh,
                       uint64_t data, uint64_t end, hs_apk_buf *ranges);
void hs_apk_pins_free(hs_apk_pins *pins);

/* Copies the kept entries (local header + data + descriptor) in file order,
 * and any bytes between them verbatim, re-aligning stored entries through
 * the 0xd935 extra field as apksig does. */
hs_result hs_apk_copy_entries(const hs_zip *z, bool alignment_preserved, hs_apk_out *o,
                              hs_apk_copy_result *res, hs_error *e) HS_MUST_CHECK;

#endif
