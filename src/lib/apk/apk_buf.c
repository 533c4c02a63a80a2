#include "apk/apk_buf.h"

#include <stdlib.h>
#include <string.h>

#include "zip/zip.h"

void hs_apk_buf_free(hs_apk_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static bool reserve(hs_apk_buf *b, size_t more)
{
    if (b->failed)
        return false;
    size_t need;
    if (__builtin_add_overflow(b->len, more, &need)) {
        b->failed = true;
        return false;
    }
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (__builtin_mul_overflow(cap, 2, &cap)) {
            b->failed = true;
            return false;
        }
    }
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void hs_apk_buf_append(hs_apk_buf *b, const void *data, size_t len)
{
    if (len == 0 || !reserve(b, len))
        return;
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void hs_apk_buf_zeros(hs_apk_buf *b, size_t len)
{
    if (len == 0 || !reserve(b, len))
        return;
    memset(b->data + b->len, 0, len);
    b->len += len;
}

void hs_apk_buf_u32(hs_apk_buf *b, uint32_t v)
{
    uint8_t t[4];
    hs_put_le32(t, v);
    hs_apk_buf_append(b, t, 4);
}

void hs_apk_buf_u64(hs_apk_buf *b, uint64_t v)
{
    uint8_t t[8];
    hs_put_le64(t, v);
    hs_apk_buf_append(b, t, 8);
}

void hs_apk_buf_lp(hs_apk_buf *b, const void *data, size_t len)
{
    if (len > UINT32_MAX) {
        b->failed = true;
        return;
    }
    hs_apk_buf_u32(b, (uint32_t)len);
    hs_apk_buf_append(b, data, len);
}

size_t hs_apk_buf_lp_begin(hs_apk_buf *b)
{
    size_t slot = b->len;
    hs_apk_buf_u32(b, 0);
    return slot;
}

void hs_apk_buf_lp_end(hs_apk_buf *b, size_t slot)
{
    if (b->failed)
        return;
    size_t n = b->len - slot - 4;
    if (n > UINT32_MAX) {
        b->failed = true;
        return;
    }
    hs_put_le32(b->data + slot, (uint32_t)n);
}

hs_result hs_apk_buf_check(const hs_apk_buf *b, const char *what, hs_error *e)
{
    if (b->failed)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory or structure too large", what);
    return HS_OK;
}
