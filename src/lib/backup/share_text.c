/* The text encoding of a share, "hsmsign-share v1" (docs/share-format.md):
 * a header line, then one "name: value" line per field. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backup/share.h"
#include "util/encoding.h"
#include "util/secmem.h"

static const char HEADER[] = "hsmsign-share v1";
static const char HEADER_STEM[] = "hsmsign-share v";

/* Larger inputs are refused before any parsing: a share is well under
 * HS_SHARE_TEXT_MAX bytes. */
#define INPUT_MAX (4 * HS_SHARE_TEXT_MAX)
/* Longest value of any field: the label (128 bytes) or a 64-digit hex. */
#define VALUE_MAX 255u

typedef enum field_id {
    F_SET_ID,
    F_THRESHOLD,
    F_SHARES,
    F_X,
    F_Y,
    F_KCV,
    F_NONCE,
    F_CIPHERTEXT,
    F_TAG,
    F_LABEL,
    F_CHECKSUM,
    F_COUNT
} field_id;

/* In the order writers emit them. */
static const char *const FIELD_NAMES[F_COUNT] = {
    "set-id", "threshold", "shares", "x", "y", "secret-kcv", "nonce", "ciphertext", "tag", "label",
    "checksum",
};

/* ---------------------------------------------------------------------
 * Serialize */

static bool share_fields_ok(const hs_share *s)
{
    return s->k >= 2 && s->k <= s->n && s->n <= HS_SHARE_MAX_SHARES && s->x != 0 &&
           (s->ciphertext_len == 16 || s->ciphertext_len == 24 || s->ciphertext_len == 32) &&
           memchr(s->label, '\0', sizeof s->label) != NULL && hs_share_label_ok(s->label);
}

hs_result hs_share_serialize(const hs_share *s, char *buf, size_t buf_size, size_t *out_len,
                             hs_error *e)
{
    *out_len = 0;
    if (!share_fields_ok(s))
        return hs_fail(e, HS_E_USAGE, "share \"%.128s\" cannot be written: a field is out of range",
                       s->label);
    char set_id[2 * HS_SHARE_SET_ID_LEN + 1], y[2 * HS_SHARE_KEY_LEN + 1];
    char kcv[2 * HS_SHARE_KCV_LEN + 1], nonce[2 * HS_SHARE_NONCE_LEN + 1];
    char ct[2 * HS_SHARE_SECRET_MAX + 1], tag[2 * HS_SHARE_TAG_LEN + 1];
    char sum[2 * HS_SHARE_CHECKSUM_LEN + 1];
    hs_hex_encode(s->set_id, sizeof s->set_id, set_id);
    hs_hex_encode(s->y, sizeof s->y, y);
    hs_hex_encode(s->kcv, sizeof s->kcv, kcv);
    hs_hex_encode(s->nonce, sizeof s->nonce, nonce);
    hs_hex_encode(s->ciphertext, s->ciphertext_len, ct);
    hs_hex_encode(s->tag, sizeof s->tag, tag);
    hs_hex_encode(s->checksum, sizeof s->checksum, sum);
    int n = snprintf(buf, buf_size,
                     "%s\n%s: %s\n%s: %u\n%s: %u\n%s: %u\n%s: %s\n%s: %s\n%s: %s\n%s: %s\n"
                     "%s: %s\n%s: %s\n%s: %s\n",
                     HEADER, FIELD_NAMES[F_SET_ID], set_id, FIELD_NAMES[F_THRESHOLD], s->k,
                     FIELD_NAMES[F_SHARES], s->n, FIELD_NAMES[F_X], (unsigned)s->x,
                     FIELD_NAMES[F_Y], y, FIELD_NAMES[F_KCV], kcv, FIELD_NAMES[F_NONCE], nonce,
                     FIELD_NAMES[F_CIPHERTEXT], ct, FIELD_NAMES[F_TAG], tag, FIELD_NAMES[F_LABEL],
                     s->label, FIELD_NAMES[F_CHECKSUM], sum);
    hs_wipe(y, sizeof y);
    if (n < 0 || (size_t)n >= buf_size) {
        hs_wipe(buf, buf_size);
        return hs_fail(e, HS_E_USAGE, "share \"%s\": the output buffer of %zu bytes is too small",
                       s->label, buf_size);
    }
    *out_len = (size_t)n;
    return HS_OK;
}

/* ---------------------------------------------------------------------
 * Parse */

typedef struct parser {
    const char *source;
    unsigned line;
    hs_error *e;
} parser;

static hs_result parse_fail(const parser *p, const char *fmt, ...) HS_PRINTF(2, 3);

/* "<source>: line N: " + the message. */
static hs_result parse_fail(const parser *p, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hs_fail(p->e, HS_E_FORMAT, "%s: line %u: %s", p->source, p->line, msg);
}

/* A decimal without sign, leading zero or spaces, within [min, max]. */
static bool parse_small_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    size_t len = strlen(s);
    if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static hs_result parse_value(const parser *p, field_id id, const char *v, hs_share *s)
{
    const char *name = FIELD_NAMES[id];
    bool ok = false;
    unsigned num = 0;
    switch (id) {
    case F_SET_ID:
        ok = hs_hex_decode(v, s->set_id, sizeof s->set_id);
        break;
    case F_THRESHOLD:
        ok = parse_small_uint(v, 2, HS_SHARE_MAX_SHARES, &s->k);
        break;
    case F_SHARES:
        ok = parse_small_uint(v, 2, HS_SHARE_MAX_SHARES, &s->n);
        break;
    case F_X:
        ok = parse_small_uint(v, 1, 255, &num);
        s->x = (uint8_t)num;
        break;
    case F_Y:
        ok = hs_hex_decode(v, s->y, sizeof s->y);
        break;
    case F_KCV:
        ok = hs_hex_decode(v, s->kcv, sizeof s->kcv);
        break;
    case F_NONCE:
        ok = hs_hex_decode(v, s->nonce, sizeof s->nonce);
        break;
    case F_CIPHERTEXT:
        s->ciphertext_len = strlen(v) / 2;
        ok = (s->ciphertext_len == 16 || s->ciphertext_len == 24 || s->ciphertext_len == 32) &&
             hs_hex_decode(v, s->ciphertext, s->ciphertext_len);
        break;
    case F_TAG:
        ok = hs_hex_decode(v, s->tag, sizeof s->tag);
        break;
    case F_LABEL:
        ok = hs_share_label_ok(v);
        if (ok) /* hs_share_label_ok bounds the length to HS_SHARE_LABEL_MAX */
            memcpy(s->label, v, strlen(v) + 1);
        break;
    case F_CHECKSUM:
        ok = hs_hex_decode(v, s->checksum, sizeof s->checksum);
        break;
    case F_COUNT:
        break;
    }
    if (!ok)
        return parse_fail(p, "field '%s' has a malformed value (%s)", name,
                          id == F_LABEL      ? "1 to 128 bytes of UTF-8 without control characters"
                          : id == F_THRESHOLD ? "a number from 2 to 255"
                          : id == F_SHARES    ? "a number from 2 to 255"
                          : id == F_X         ? "a number from 1 to 255"
                          : id == F_CIPHERTEXT ? "32, 48 or 64 hex digits"
                                               : "the wrong number of hex digits, or not hex");
    return HS_OK;
}

static hs_result parse_header(const parser *p, const char *line, size_t len)
{
    if (len == sizeof HEADER - 1 && memcmp(line, HEADER, len) == 0)
        return HS_OK;
    if (len > sizeof HEADER_STEM - 1 && memcmp(line, HEADER_STEM, sizeof HEADER_STEM - 1) == 0)
        return hs_fail(p->e, HS_E_FORMAT,
                       "%s: share format version '%.*s' is not supported (this hsmsign reads v1)",
                       p->source, (int)(len - (sizeof HEADER_STEM - 2)),
                       line + sizeof HEADER_STEM - 2);
    return hs_fail(p->e, HS_E_FORMAT, "%s: not an hsmsign share (the first line is not '%s')",
                   p->source, HEADER);
}

static field_id lookup_field(const char *name, size_t len)
{
    for (int i = 0; i < F_COUNT; i++)
        if (strlen(FIELD_NAMES[i]) == len && memcmp(FIELD_NAMES[i], name, len) == 0)
            return (field_id)i;
    return F_COUNT;
}

/* One "name: value" line. value_buf holds the value (NUL-terminated) while
 * it is decoded; the caller wipes it. */
static hs_result parse_field_line(parser *p, const char *line, size_t len, bool *seen,
                                  char *value_buf, hs_share *out)
{
    const char *sep = memchr(line, ':', len);
    if (sep == NULL || (size_t)(sep - line) + 1 >= len || sep[1] != ' ')
        return parse_fail(p, "expected 'name: value'");
    size_t name_len = (size_t)(sep - line);
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)(name_len < 31 ? name_len : 31), line);
    field_id id = lookup_field(line, name_len);
    if (id == F_COUNT)
        return parse_fail(p, "unknown field '%s'", name);
    if (seen[id])
        return parse_fail(p, "field '%s' appears twice", name);
    seen[id] = true;
    size_t value_len = len - name_len - 2;
    if (value_len > VALUE_MAX)
        return parse_fail(p, "the value of field '%s' is too long", name);
    memcpy(value_buf, sep + 2, value_len);
    value_buf[value_len] = '\0';
    return parse_value(p, id, value_buf, out);
}

static hs_result parse_lines(parser *p, const char *text, size_t len, char *value_buf,
                             hs_share *out)
{
    bool seen[F_COUNT] = {false};
    size_t start = 0;
    while (start < len) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t line_len = (size_t)(nl - (text + start)); /* a newline ends the input */
        const char *line = text + start;
        p->line++;
        hs_result rc;
        if (memchr(line, '\r', line_len) != NULL)
            rc = parse_fail(p, "carriage return in line (only LF line endings are accepted)");
        else if (p->line == 1)
            rc = parse_header(p, line, line_len);
        else
            rc = parse_field_line(p, line, line_len, seen, value_buf, out);
        if (rc != HS_OK)
            return rc;
        start += line_len + 1;
    }
    for (int i = 0; i < F_COUNT; i++)
        if (!seen[i])
            return hs_fail(p->e, HS_E_FORMAT, "%s: field '%s' is missing (truncated share?)",
                           p->source, FIELD_NAMES[i]);
    if (out->k > out->n)
        return hs_fail(p->e, HS_E_FORMAT, "%s: threshold %u is larger than the %u shares of the set",
                       p->source, out->k, out->n);
    return HS_OK;
}

hs_result hs_share_parse(const char *text, size_t len, const char *source, hs_share *out,
                         hs_error *e)
{
    memset(out, 0, sizeof *out);
    parser p = {source != NULL ? source : "share", 0, e};
    if (len == 0)
        return hs_fail(e, HS_E_FORMAT, "%s: empty file, not a share", p.source);
    if (len > INPUT_MAX)
        return hs_fail(e, HS_E_FORMAT, "%s: %zu bytes is too large for a share", p.source, len);
    if (memchr(text, '\0', len) != NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: contains a NUL byte, not a share", p.source);
    if (text[len - 1] != '\n')
        return hs_fail(e, HS_E_FORMAT, "%s: truncated (the last line has no newline)", p.source);
    char value_buf[VALUE_MAX + 1];
    hs_result rc = parse_lines(&p, text, len, value_buf, out);
    hs_wipe(value_buf, sizeof value_buf);
    if (rc != HS_OK)
        hs_share_wipe(out);
    return rc;
}
