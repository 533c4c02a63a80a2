/* Bounds-checked reader of the little-endian, u32-length-prefixed records
 * of APK signing blocks and lineages (apksig's getLengthPrefixedSlice). */
#ifndef HSMSIGN_ANDROID_APK_LP_H
#define HSMSIGN_ANDROID_APK_LP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zip/zip.h"

typedef struct hs_lp {
    const uint8_t *p;
    size_t len, pos;
} hs_lp;

static inline bool hs_lp_u32(hs_lp *r, uint32_t *v)
{
    if (r->len - r->pos < 4)
        return false;
    *v = hs_le32(r->p + r->pos);
    r->pos += 4;
    return true;
}

/* The next length-prefixed record, as a reader of its own. */
static inline bool hs_lp_slice(hs_lp *r, hs_lp *inner)
{
    uint32_t n;
    if (!hs_lp_u32(r, &n) || n > r->len - r->pos)
        return false;
    *inner = (hs_lp){r->p + r->pos, n, 0};
    r->pos += n;
    return true;
}

static inline bool hs_lp_end(const hs_lp *r)
{
    return r->pos == r->len;
}

#endif
