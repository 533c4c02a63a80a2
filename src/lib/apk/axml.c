/* Reads minSdkVersion the way apksig's ApkUtils does: the maximum over all
 * <uses-sdk> elements at depth 2 (children of <manifest>) without a
 * namespace, attribute found by resource ID 0x0101020c; int values as is,
 * string values as platform codenames. Every offset is bounds-checked. */
#include "apk/axml.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zip/zip_inflate.h"

#define CHUNK_XML 0x0003u
#define CHUNK_STRING_POOL 0x0001u
#define CHUNK_RESOURCE_MAP 0x0180u
#define CHUNK_START_ELEMENT 0x0102u
#define CHUNK_END_ELEMENT 0x0103u
#define POOL_UTF8 0x100u
#define NO_INDEX 0xffffffffu
#define ATTR_MIN_SDK_VERSION 0x0101020cu
#define ATTR_TARGET_SDK_VERSION 0x01010270u
#define ATTR_TARGET_SANDBOX_VERSION 0x0101054cu
#define TYPE_STRING 0x03u
#define TYPE_INT_DEC 0x10u
#define TYPE_INT_HEX 0x11u
#define MAX_MANIFEST (16u * 1024u * 1024u)

typedef struct axml {
    const uint8_t *p;
    size_t len;
    const char *what;
    /* string pool */
    const uint8_t *pool;
    size_t pool_len;
    uint32_t string_count, strings_start;
    bool utf8;
    /* resource map */
    const uint8_t *res_map;
    uint32_t res_count;
} axml;

static hs_result bad(const axml *x, hs_error *e, const char *why)
{
    return hs_fail(e, HS_E_FORMAT, "%s: malformed binary XML: %s", x->what, why);
}

static hs_result read_pool(axml *x, const uint8_t *chunk, size_t size, size_t header,
                           hs_error *e)
{
    if (header < 28)
        return bad(x, e, "string pool header too short");
    x->pool = chunk;
    x->pool_len = size;
    x->string_count = hs_le32(chunk + 8);
    x->utf8 = (hs_le32(chunk + 16) & POOL_UTF8) != 0;
    x->strings_start = hs_le32(chunk + 20);
    if (x->string_count > (size - header) / 4 || x->strings_start > size)
        return bad(x, e, "string pool offsets out of range");
    return HS_OK;
}

/* Decodes string index into a short ASCII/UTF-8 prefix in buf (enough to
 * compare with element names and read a codename's first letter). */
static bool get_string(const axml *x, uint32_t index, char *buf, size_t buf_len)
{
    if (x->pool == NULL || index >= x->string_count)
        return false;
    size_t hdr = hs_le16(x->pool + 2);
    uint32_t off = hs_le32(x->pool + hdr + 4 * (size_t)index);
    size_t pos = (size_t)x->strings_start + off, end = x->pool_len;
    if ((uint64_t)x->strings_start + off >= end)
        return false;
    const uint8_t *s = x->pool;
    size_t n = 0;
    if (x->utf8) {
        for (int k = 0; k < 2; k++) { /* UTF-16 length, then UTF-8 length */
            if (pos >= end)
                return false;
            n = s[pos] & 0x7f;
            if (s[pos++] & 0x80) {
                if (pos >= end)
                    return false;
                n = (n << 8) | s[pos++];
            }
        }
        if (n > end - pos)
            return false;
        size_t copy = n < buf_len - 1 ? n : buf_len - 1;
        memcpy(buf, s + pos, copy);
        buf[copy] = 0;
        return true;
    }
    if (end - pos < 2)
        return false;
    n = hs_le16(s + pos);
    pos += 2;
    if (n & 0x8000) {
        if (end - pos < 2)
            return false;
        n = ((n & 0x7fff) << 16) | hs_le16(s + pos);
        pos += 2;
    }
    if (n > (end - pos) / 2)
        return false;
    size_t copy = 0;
    for (; copy < n && copy < buf_len - 1; copy++) {
        uint16_t c = hs_le16(s + pos + 2 * copy);
        buf[copy] = (char)(c < 0x80 ? c : '?');
    }
    buf[copy] = 0;
    return true;
}

/* apksig's pessimistic codename mapping (N -> 23, released as 24). */
static bool codename_sdk(const char *name, int *sdk)
{
    static const struct {
        char letter;
        int sdk;
    } known[] = {{'C', 2},  {'D', 3},  {'E', 4},  {'F', 7},  {'G', 8},  {'H', 10}, {'I', 13},
                 {'J', 15}, {'K', 18}, {'L', 20}, {'M', 22}, {'N', 23}, {'O', 25}};
    char c = name[0];
    if (c < 'A' || c > 'Z')
        return false;
    if (c < 'C') {
        *sdk = 1;
        return true;
    }
    size_t i = 0;
    while (i + 1 < sizeof known / sizeof known[0] && known[i + 1].letter <= c)
        i++;
    *sdk = known[i].sdk + (c - known[i].letter);
    return true;
}

static hs_result uses_sdk_min(const axml *x, const uint8_t *chunk, size_t size, size_t header,
                              void *ctx, hs_error *e)
{
    /* element extension: ns, name, attrStart u16, attrSize u16, attrCount u16 */
    if (size < header + 20)
        return bad(x, e, "start element too short");
    const uint8_t *ext = chunk + header;
    uint32_t ns = hs_le32(ext), name = hs_le32(ext + 4);
    size_t attr_start = hs_le16(ext + 8), attr_size = hs_le16(ext + 10);
    size_t attr_count = hs_le16(ext + 12);
    char buf[64];
    if (!get_string(x, name, buf, sizeof buf))
        return bad(x, e, "element name out of range");
    char nsbuf[8] = "";
    if (ns != NO_INDEX && !get_string(x, ns, nsbuf, sizeof nsbuf))
        return bad(x, e, "element namespace out of range");
    if (strcmp(buf, "uses-sdk") != 0 || nsbuf[0] != 0)
        return HS_OK;
    if (attr_count > 0 && (attr_size < 20 || attr_start > size - header ||
                           attr_count > (size - header - attr_start) / attr_size))
        return bad(x, e, "attributes run past the element");
    int value = 1;
    for (size_t i = 0; i < attr_count; i++) {
        const uint8_t *a = ext + attr_start + i * attr_size;
        uint32_t attr_name = hs_le32(a + 4);
        uint32_t res_id = attr_name < x->res_count ? hs_le32(x->res_map + 4 * (size_t)attr_name) : 0;
        if (res_id != ATTR_MIN_SDK_VERSION)
            continue;
        uint8_t type = a[15];
        uint32_t data = hs_le32(a + 16);
        if (type == TYPE_INT_DEC || type == TYPE_INT_HEX) {
            value = (int32_t)data;
        } else if (type == TYPE_STRING) {
            if (!get_string(x, data, buf, sizeof buf))
                return bad(x, e, "minSdkVersion string out of range");
            if (!codename_sdk(buf, &value))
                return hs_fail(e, HS_E_FORMAT, "%s: unsupported codename in minSdkVersion: \"%s\"",
                               x->what, buf);
        } else {
            return hs_fail(e, HS_E_FORMAT,
                           "%s: minSdkVersion has value type 0x%02x; only integers and codenames "
                           "are supported",
                           x->what, type);
        }
        break;
    }
    int *min_sdk = ctx;
    if (value > *min_sdk)
        *min_sdk = value;
    return HS_OK;
}

/* Calls fn for each start element with its depth (1 for the root). */
typedef hs_result (*element_fn)(void *ctx, const axml *x, const uint8_t *chunk, size_t size,
                                size_t header, int depth, hs_error *e);

static hs_result walk(axml *x, element_fn fn, void *ctx, hs_error *e)
{
    const uint8_t *xml = x->p;
    size_t len = x->len;
    if (len < 8 || hs_le16(xml) != CHUNK_XML || hs_le16(xml + 2) < 8 || hs_le32(xml + 4) > len ||
        hs_le32(xml + 4) < hs_le16(xml + 2))
        return bad(x, e, "not an Android binary XML document");
    size_t end = hs_le32(xml + 4), pos = hs_le16(xml + 2);
    int depth = 0;
    while (pos < end) {
        if (end - pos < 8)
            return bad(x, e, "truncated chunk header");
        const uint8_t *chunk = xml + pos;
        uint16_t type = hs_le16(chunk);
        size_t header = hs_le16(chunk + 2), size = hs_le32(chunk + 4);
        if (header < 8 || size < header || size > end - pos)
            return bad(x, e, "chunk size out of range");
        hs_result r = HS_OK;
        if (type == CHUNK_STRING_POOL && x->pool == NULL) {
            r = read_pool(x, chunk, size, header, e);
        } else if (type == CHUNK_RESOURCE_MAP && x->res_map == NULL) {
            x->res_map = chunk + header;
            x->res_count = (uint32_t)((size - header) / 4);
        } else if (type == CHUNK_START_ELEMENT) {
            depth++;
            r = fn(ctx, x, chunk, size, header, depth, e);
        } else if (type == CHUNK_END_ELEMENT) {
            if (depth == 0)
                return bad(x, e, "end element without a start");
            depth--;
        }
        if (r != HS_OK)
            return r;
        pos += size;
    }
    return HS_OK;
}

static hs_result min_sdk_element(void *ctx, const axml *x, const uint8_t *chunk, size_t size,
                                 size_t header, int depth, hs_error *e)
{
    return depth == 2 ? uses_sdk_min(x, chunk, size, header, ctx, e) : HS_OK;
}

hs_result hs_axml_min_sdk(const uint8_t *xml, size_t len, const char *what, int *min_sdk,
                          hs_error *e)
{
    axml x = {.p = xml, .len = len, .what = what};
    *min_sdk = 1;
    return walk(&x, min_sdk_element, min_sdk, e);
}

typedef struct attr_query {
    const char *element;
    uint32_t res_id;
    bool found;
    int value;
} attr_query;

/* apksig's getAttributeValueFromBinaryAndroidManifest: the first element
 * of that name (any depth) with the attribute, if its value is an int. */
static hs_result attr_element(void *ctx, const axml *x, const uint8_t *chunk, size_t size,
                              size_t header, int depth, hs_error *e)
{
    (void)depth;
    (void)e;
    attr_query *q = ctx;
    if (q->found || size < header + 20)
        return HS_OK;
    const uint8_t *ext = chunk + header;
    size_t attr_start = hs_le16(ext + 8), attr_size = hs_le16(ext + 10);
    size_t attr_count = hs_le16(ext + 12);
    char buf[64];
    if (!get_string(x, hs_le32(ext + 4), buf, sizeof buf) || strcmp(buf, q->element) != 0)
        return HS_OK;
    if (attr_count > 0 && (attr_size < 20 || attr_start > size - header ||
                           attr_count > (size - header - attr_start) / attr_size))
        return HS_OK;
    for (size_t i = 0; i < attr_count; i++) {
        const uint8_t *a = ext + attr_start + i * attr_size;
        uint32_t attr_name = hs_le32(a + 4);
        uint32_t res_id = attr_name < x->res_count ? hs_le32(x->res_map + 4 * (size_t)attr_name) : 0;
        if (res_id != q->res_id)
            continue;
        if (a[15] == TYPE_INT_DEC || a[15] == TYPE_INT_HEX) {
            q->found = true;
            q->value = (int32_t)hs_le32(a + 16);
        }
        break;
    }
    return HS_OK;
}

hs_result hs_axml_sdk_info(const uint8_t *xml, size_t len, const char *what, hs_axml_sdk *out,
                           hs_error *e)
{
    hs_result r = hs_axml_min_sdk(xml, len, what, &out->min_sdk, e);
    if (r != HS_OK)
        return r;
    attr_query target = {"uses-sdk", ATTR_TARGET_SDK_VERSION, false, 0};
    attr_query sandbox = {"manifest", ATTR_TARGET_SANDBOX_VERSION, false, 0};
    axml x = {.p = xml, .len = len, .what = what};
    if (walk(&x, attr_element, &target, e) == HS_OK && target.found)
        out->target_sdk = target.value;
    else
        out->target_sdk = out->min_sdk; /* apksig's default */
    axml y = {.p = xml, .len = len, .what = what};
    out->target_sandbox = walk(&y, attr_element, &sandbox, e) == HS_OK && sandbox.found
                              ? sandbox.value : 1;
    return HS_OK;
}

hs_result hs_axml_apk_min_sdk(const hs_zip *z, int *min_sdk, hs_error *e)
{
    long i = hs_zip_find(z, "AndroidManifest.xml");
    if (i < 0)
        return hs_fail(e, HS_E_FORMAT, "%s: no AndroidManifest.xml, so the minimum SDK is unknown",
                       z->path);
    uint8_t *xml = NULL;
    size_t len = 0;
    hs_result r = hs_zip_read_entry(z, &z->entries[i], MAX_MANIFEST, &xml, &len, e);
    if (r != HS_OK)
        return r;
    size_t what_len = strlen(z->path) + sizeof "!AndroidManifest.xml";
    char *what = malloc(what_len);
    if (what == NULL) {
        free(xml);
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", z->path);
    }
    snprintf(what, what_len, "%s!AndroidManifest.xml", z->path);
    r = hs_axml_min_sdk(xml, len, what, min_sdk, e);
    free(what);
    free(xml);
    return r;
}
