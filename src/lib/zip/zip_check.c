#include "zip/zip_check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* next_in is const: zlib only reads the input. */
#define ZLIB_CONST
#include <zlib.h>

#include "zip/zip_inflate.h"

#define OUT_WINDOW (64u * 1024u)
#define FILE_STEP (1024u * 1024u)
#define METHOD_DEFLATED 8u

struct hs_zip_check {
    const hs_zip *z;
    size_t *order;        /* entry indexes by local header offset */
    size_t next;          /* first entry of order not yet complete */
    uint64_t fed;         /* data bytes of order[next] seen so far */
    uint64_t inflated;    /* its uncompressed bytes so far (deflated) */
    uint32_t crc;         /* CRC-32 of its uncompressed bytes so far */
    z_stream inf;
    bool inf_ready;       /* inflateInit2 succeeded; reset per entry */
    bool stream_end;      /* the deflate stream of order[next] has ended */
    bool failed;
    bool skip_unknown;    /* entries of other methods pass unread (verifier) */
    hs_error err;
    uint8_t *window;      /* inflated bytes, only for the CRC */
};

static bool fail_entry(hs_zip_check *c, const hs_zip_entry *ent, const char *reason)
{
    if (!c->failed)
        hs_fail(&c->err, HS_E_FORMAT, "%s: entry %.*s: %s (its data is corrupt)", c->z->path,
                (int)ent->name_len, ent->name, reason);
    c->failed = true;
    return false;
}

hs_result hs_zip_check_new(const hs_zip *z, hs_zip_check **out, hs_error *e)
{
    hs_zip_check *c = calloc(1, sizeof *c);
    if (c == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", z->path);
    c->z = z;
    c->order = hs_zip_file_order(z);
    c->window = malloc(OUT_WINDOW);
    c->inf_ready = c->order != NULL && c->window != NULL &&
                   inflateInit2(&c->inf, -MAX_WBITS) == Z_OK;
    if (!c->inf_ready) {
        hs_zip_check_free(c);
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory for the entry check", z->path);
    }
    *out = c;
    return HS_OK;
}

/* Inflates one piece of a deflated entry's data; only the CRC of the
 * output is kept. Runs until zlib wants more input (output space left
 * over) or the stream ends. */
static bool inflate_piece(hs_zip_check *c, const hs_zip_entry *ent, const uint8_t *data,
                          size_t len)
{
    if (c->stream_end)
        return len == 0 || fail_entry(c, ent, "bytes follow the end of its deflate stream");
    c->inf.next_in = data;
    c->inf.avail_in = (uInt)len;
    do {
        c->inf.next_out = c->window;
        c->inf.avail_out = OUT_WINDOW;
        int zr = inflate(&c->inf, Z_NO_FLUSH);
        size_t produced = OUT_WINDOW - c->inf.avail_out;
        if (zr == Z_MEM_ERROR)
            return fail_entry(c, ent, "out of memory while inflating");
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
            return fail_entry(c, ent, "corrupt deflate data");
        c->inflated += produced;
        if (c->inflated > ent->uncompressed_size)
            return fail_entry(c, ent, "inflates to more than its declared size");
        c->crc = hs_crc32_update(c->crc, c->window, produced);
        c->stream_end = zr == Z_STREAM_END;
    } while (!c->stream_end && (c->inf.avail_in > 0 || c->inf.avail_out == 0));
    if (c->inf.avail_in > 0)
        return fail_entry(c, ent, "bytes follow the end of its deflate stream");
    return true;
}

static bool unread(const hs_zip_check *c, const hs_zip_entry *ent)
{
    return c->skip_unknown && ent->method != HS_ZIP_METHOD_STORED && ent->method != METHOD_DEFLATED;
}

/* All of the entry's data has been fed: sizes and CRC-32 against the CD. */
static bool finish_entry(hs_zip_check *c, const hs_zip_entry *ent)
{
    bool ok = true;
    if (unread(c, ent))
        ;
    else if (ent->method == HS_ZIP_METHOD_STORED && ent->compressed_size != ent->uncompressed_size)
        ok = fail_entry(c, ent, "stored, but its compressed and uncompressed sizes differ");
    else if (ent->method != HS_ZIP_METHOD_STORED && !c->stream_end)
        ok = fail_entry(c, ent, "its deflate data ends before the deflate stream does");
    else if (ent->method != HS_ZIP_METHOD_STORED && c->inflated != ent->uncompressed_size)
        ok = fail_entry(c, ent, "inflates to fewer bytes than its declared size");
    else if (c->crc != ent->crc32)
        ok = fail_entry(c, ent, "CRC-32 does not match the one declared");
    c->next++;
    c->fed = c->inflated = 0;
    c->crc = 0;
    c->stream_end = false;
    if (ok && ent->method != HS_ZIP_METHOD_STORED && inflateReset(&c->inf) != Z_OK)
        ok = fail_entry(c, ent, "zlib could not be reset");
    return ok;
}

static bool feed_entry(hs_zip_check *c, const hs_zip_entry *ent, const uint8_t *data, size_t len)
{
    c->fed += len;
    if (ent->method == HS_ZIP_METHOD_STORED) {
        c->crc = hs_crc32_update(c->crc, data, len);
        return true;
    }
    if (unread(c, ent))
        return true;
    if (ent->method != METHOD_DEFLATED)
        return fail_entry(c, ent, "compression method is neither stored nor deflated");
    return inflate_piece(c, ent, data, len);
}

bool hs_zip_check_feed(hs_zip_check *c, uint64_t offset, const uint8_t *data, size_t len)
{
    uint64_t end = offset + len;
    while (!c->failed && c->next < c->z->entry_count) {
        const hs_zip_entry *ent = &c->z->entries[c->order[c->next]];
        /* zip.c bounds the data of a stored entry by its uncompressed size. */
        uint64_t size = ent->method == HS_ZIP_METHOD_STORED ? ent->uncompressed_size
                                                            : ent->compressed_size;
        uint64_t from = ent->data_offset + c->fed, to = ent->data_offset + size;
        if (from >= end && from < to)
            break; /* the entry's next bytes come with a later call */
        if (from < to) {
            uint64_t stop = to < end ? to : end;
            if (from < offset)
                return fail_entry(c, ent, "its data was skipped by the reader (internal error)");
            if (!feed_entry(c, ent, data + (from - offset), (size_t)(stop - from)))
                return false;
            if (stop < to)
                break;
        }
        if (!finish_entry(c, ent))
            return false;
    }
    return !c->failed;
}

hs_result hs_zip_check_end(hs_zip_check *c, hs_error *e)
{
    if (!c->failed && c->next < c->z->entry_count)
        fail_entry(c, &c->z->entries[c->order[c->next]], "its data was not read to the end");
    if (!c->failed)
        return HS_OK;
    *e = c->err;
    return c->err.code;
}

void hs_zip_check_free(hs_zip_check *c)
{
    if (c == NULL)
        return;
    if (c->inf_ready)
        inflateEnd(&c->inf);
    free(c->order);
    free(c->window);
    free(c);
}

hs_result hs_zip_check_file(const hs_zip *z, bool skip_unknown_methods, hs_error *e)
{
    hs_zip_check *c = NULL;
    uint8_t *buf = malloc(FILE_STEP);
    hs_result r = buf != NULL ? hs_zip_check_new(z, &c, e)
                              : hs_fail(e, HS_E_NOMEM, "%s: out of memory", z->path);
    if (r == HS_OK)
        c->skip_unknown = skip_unknown_methods;
    bool fed = true;
    for (uint64_t off = 0; r == HS_OK && fed && off < z->entries_end;) {
        size_t want = z->entries_end - off < FILE_STEP ? (size_t)(z->entries_end - off) : FILE_STEP;
        ssize_t n = pread(z->fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            r = hs_fail(e, HS_E_IO, "%s: read failed: %s", z->path,
                        n < 0 ? strerror(errno) : "unexpected end of file");
        else
            fed = hs_zip_check_feed(c, off, buf, (size_t)n);
        off += n > 0 ? (uint64_t)n : 0;
    }
    if (r == HS_OK)
        r = hs_zip_check_end(c, e);
    hs_zip_check_free(c);
    free(buf);
    return r;
}
