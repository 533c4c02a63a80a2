#include "avb/avb_bytes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static hs_result reserve(hs_avb_buf *b, size_t extra, hs_error *e)
{
    if (extra > SIZE_MAX - b->len)
        return hs_fail(e, HS_E_NOMEM, "AVB buffer size overflow");
    size_t need = b->len + extra;
    if (need <= b->cap)
        return HS_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory growing an AVB buffer to %zu bytes", cap);
    b->data = p;
    b->cap = cap;
    return HS_OK;
}

hs_result hs_avb_buf_append(hs_avb_buf *b, const void *data, size_t len, hs_error *e)
{
    hs_result r = reserve(b, len, e);
    if (r != HS_OK)
        return r;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return HS_OK;
}

hs_result hs_avb_buf_zeros(hs_avb_buf *b, size_t len, hs_error *e)
{
    hs_result r = reserve(b, len, e);
    if (r != HS_OK)
        return r;
    if (len > 0)
        memset(b->data + b->len, 0, len);
    b->len += len;
    return HS_OK;
}

hs_result hs_avb_buf_pad(hs_avb_buf *b, size_t m, hs_error *e)
{
    size_t rem = b->len % m;
    return rem == 0 ? HS_OK : hs_avb_buf_zeros(b, m - rem, e);
}

void hs_avb_buf_free(hs_avb_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

hs_result hs_avb_pread_all(int fd, void *buf, size_t len, uint64_t off, const char *path,
                           hs_error *e)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return hs_fail(e, HS_E_IO, "%s: read at offset %llu failed: %s", path,
                           (unsigned long long)off,
                           n < 0 ? strerror(errno) : "unexpected end of file");
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return HS_OK;
}

hs_result hs_avb_pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *path,
                            hs_error *e)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hs_fail(e, HS_E_IO, "%s: write at offset %llu failed: %s", path,
                           (unsigned long long)off, strerror(errno));
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return HS_OK;
}
