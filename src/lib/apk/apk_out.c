/* The output APK of the signer: a temporary file written front to back.
 *
 * Why it looks like this: signing an APK should cost one pass over its
 * bytes. Most of the output is the input's entries, unchanged and at the
 * same offsets (an unsigned or v2/v3-signed APK keeps every entry; a v1
 * re-sign drops only META-INF files, which apksig puts last). So:
 *   - bytes taken from the input go file to file with copy_file_range: the
 *     kernel copies page cache pages, the process never touches them;
 *   - the longest prefix the output shares with the input, byte for byte at
 *     the same offsets, is tracked (shared_end). The input's SHA-256 over
 *     that prefix is the output's too, so the output hash at the end only
 *     reads what follows it (signature files, signing block, CD, EOCD). */
#include "apk/apk_sign_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COPY_STEP (64u * 1024u * 1024u)

hs_result hs_apk_out_open(hs_apk_out *o, const char *path, hs_error *e)
{
    memset(o, 0, sizeof *o);
    o->af.fd = -1;
    o->buf = malloc(HS_APK_OUT_BUF);
    if (o->buf == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", path);
    hs_result r = hs_atomic_open(&o->af, path, 0644, e);
    if (r != HS_OK) {
        hs_apk_out_abort(o);
        return r;
    }
    o->open = true;
    return HS_OK;
}

/* The fallback when the kernel cannot copy between these files: plain
 * writes from the map, released behind us so the input never becomes
 * resident as a whole. */
static hs_result write_from_map(hs_apk_out *o, const hs_zip *z, uint64_t off, uint64_t len,
                                hs_error *e)
{
    while (len > 0) {
        uint64_t n = len < HS_ZIP_RELEASE_STEP ? len : HS_ZIP_RELEASE_STEP;
        hs_result r = hs_atomic_write_all(&o->af, z->map + off, (size_t)n, e);
        hs_zip_release(z, off, n);
        if (r != HS_OK)
            return r;
        off += n;
        len -= n;
    }
    return HS_OK;
}

static hs_result flush_pending(hs_apk_out *o, hs_error *e)
{
    const hs_zip *z = o->pend_src;
    uint64_t len = o->pend_len;
    loff_t in_off = (loff_t)o->pend_off;
    o->pend_len = 0;
    while (len > 0 && !o->no_copy_range) {
        size_t step = len < COPY_STEP ? (size_t)len : COPY_STEP;
        ssize_t n = copy_file_range(z->fd, &in_off, o->af.fd, NULL, step, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            len -= (uint64_t)n;
            continue;
        }
        if (n == 0)
            return hs_fail(e, HS_E_IO, "%s: the input became shorter while it was being signed",
                           z->path);
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP &&
            errno != EPERM)
            return hs_fail(e, HS_E_IO, "%s: writing: %s", o->af.tmp_path, strerror(errno));
        o->no_copy_range = true; /* e.g. an old kernel or a special file: write instead */
    }
    return len > 0 ? write_from_map(o, z, (uint64_t)in_off, len, e) : HS_OK;
}

/* Memory bytes go through buf, input ranges wait in pend_* so that the
 * thousands of adjacent entries of a large APK become one copy; only one of
 * the two is ever non-empty, which keeps the bytes in order. */
static hs_result flush_buffer(hs_apk_out *o, hs_error *e)
{
    if (o->buf_len == 0)
        return HS_OK;
    hs_result r = hs_atomic_write_all(&o->af, o->buf, o->buf_len, e);
    o->buf_len = 0;
    return r;
}

hs_result hs_apk_out_write(hs_apk_out *o, const void *data, size_t len, hs_error *e)
{
    if (len == 0)
        return HS_OK;
    hs_result r = flush_pending(o, e);
    if (r != HS_OK)
        return r;
    o->diverged = true; /* bytes of our own: the shared prefix ends here */
    o->pos += len;
    if (len <= HS_APK_OUT_BUF - o->buf_len) {
        memcpy(o->buf + o->buf_len, data, len);
        o->buf_len += len;
        return HS_OK;
    }
    r = flush_buffer(o, e);
    if (r != HS_OK)
        return r;
    return hs_atomic_write_all(&o->af, data, len, e);
}

hs_result hs_apk_out_zeros(hs_apk_out *o, size_t len, hs_error *e)
{
    static const uint8_t zeros[4096];
    while (len > 0) {
        size_t n = len < sizeof zeros ? len : sizeof zeros;
        hs_result r = hs_apk_out_write(o, zeros, n, e);
        if (r != HS_OK)
            return r;
        len -= n;
    }
    return HS_OK;
}

hs_result hs_apk_out_flush(hs_apk_out *o, hs_error *e)
{
    hs_result r = flush_pending(o, e);
    return r == HS_OK ? flush_buffer(o, e) : r;
}

hs_result hs_apk_out_copy_input(hs_apk_out *o, const hs_zip *z, uint64_t off, uint64_t len,
                                hs_error *e)
{
    if (len == 0)
        return HS_OK;
    if (off > z->size || len > z->size - off)
        return hs_fail(e, HS_E_INTERNAL, "%s: copy beyond the end of the input", z->path);
    hs_result r = flush_buffer(o, e);
    if (r == HS_OK && o->pend_len > 0 && (o->pend_src != z || o->pend_off + o->pend_len != off))
        r = flush_pending(o, e);
    if (r != HS_OK)
        return r;
    if (!o->diverged && off == o->pos)
        o->shared_end = off + len;
    else
        o->diverged = true;
    if (o->pend_len == 0) {
        o->pend_src = z;
        o->pend_off = off;
    }
    o->pend_len += len;
    o->pos += len;
    return HS_OK;
}

void hs_apk_out_start_writeback(hs_apk_out *o)
{
    /* Section 1 is final: let the disk start on it while we hash, so that
     * the fsync before the rename finds little left to do. Advisory. */
    (void)sync_file_range(o->af.fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

static void *sync_thread(void *arg)
{
    hs_apk_out *o = arg;
    if (fdatasync(o->af.fd) != 0)
        o->sync_err = errno;
    return NULL;
}

void hs_apk_out_start_sync(hs_apk_out *o)
{
    /* Below this size the final fsync is short anyway, and a batch of
     * small APKs would pay a thread and a device flush more each. */
    if (o->pos < HS_APK_EARLY_SYNC_MIN || o->syncing) {
        hs_apk_out_start_writeback(o);
        return;
    }
    o->sync_err = 0;
    o->syncing = pthread_create(&o->syncer, NULL, sync_thread, o) == 0;
    if (!o->syncing)
        hs_apk_out_start_writeback(o);
}

static void join_syncer(hs_apk_out *o)
{
    if (o->syncing)
        pthread_join(o->syncer, NULL);
    o->syncing = false;
}

hs_result hs_apk_out_end_sync(hs_apk_out *o, hs_error *e)
{
    join_syncer(o);
    if (o->sync_err != 0)
        return hs_fail(e, HS_E_IO, "%s: fsync failed: %s", o->af.path, strerror(o->sync_err));
    return HS_OK;
}

hs_result hs_apk_out_finish(hs_apk_out *o, const EVP_MD_CTX *shared_prefix,
                            const hs_apk_buf *const *tail, size_t tail_count, uint8_t sha256[32],
                            hs_error *e)
{
    hs_result r = hs_apk_out_flush(o, e);
    if (r != HS_OK)
        return r;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_MD_CTX_copy_ex(ctx, shared_prefix);
    /* What follows the prefix in the file is read back: a few KB to MB in
     * the usual case, all of it when the output shares no prefix with the
     * input. */
    for (uint64_t off = o->shared_end; ok && off < o->pos;) {
        uint64_t want = o->pos - off < HS_APK_OUT_BUF ? o->pos - off : HS_APK_OUT_BUF;
        ssize_t n = pread(o->af.fd, o->buf, (size_t)want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            EVP_MD_CTX_free(ctx);
            return hs_fail(e, HS_E_IO, "%s: reading back for its SHA-256: %s", o->af.tmp_path,
                           n < 0 ? strerror(errno) : "unexpected end of file");
        }
        ok = EVP_DigestUpdate(ctx, o->buf, (size_t)n);
        off += (uint64_t)n;
    }
    for (size_t i = 0; ok && i < tail_count; i++)
        ok = EVP_DigestUpdate(ctx, tail[i]->data, tail[i]->len);
    ok = ok && EVP_DigestFinal_ex(ctx, sha256, NULL);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "%s: hashing the output failed", o->af.path);
    return HS_OK;
}

hs_result hs_apk_out_commit(hs_apk_out *o, hs_error *e)
{
    hs_result r = hs_apk_out_end_sync(o, e);
    if (r == HS_OK)
        r = hs_apk_out_flush(o, e);
    return r == HS_OK ? hs_atomic_commit(&o->af, false, e) : r;
}

void hs_apk_out_abort(hs_apk_out *o)
{
    join_syncer(o); /* its failure does not matter: the file is removed */
    if (o->open)
        hs_atomic_abort(&o->af);
    o->open = false;
    free(o->buf);
    o->buf = NULL;
}
