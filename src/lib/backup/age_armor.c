/* ASCII armor: strict PEM with type "AGE ENCRYPTED FILE", no headers,
 * canonical padded base64 in 64-column lines, every line full except the
 * last. LF or CRLF line endings; whitespace is allowed only before the
 * first and after the last line (up to 1 KiB each, as in age). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backup/age_internal.h"

static const char BEGIN[] = "-----BEGIN AGE ENCRYPTED FILE-----";
static const char END[] = "-----END AGE ENCRYPTED FILE-----";
#define MAX_WHITESPACE 1024

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool age_armor_detect(const uint8_t *in, size_t len)
{
    size_t i = 0;
    while (i < len && i < MAX_WHITESPACE && is_space(in[i]))
        i++;
    return len - i >= 10 && strncasecmp((const char *)in + i, "-----BEGIN", 10) == 0;
}

hs_result age_armor_encode(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len,
                           hs_error *e)
{
    size_t chars = age_b64_encoded_len(len, true);
    size_t lines = chars / AGE_COLUMNS + 1;
    if (len > SIZE_MAX / 2)
        return hs_fail(e, HS_E_USAGE, "age armor: input too large");
    size_t cap = sizeof BEGIN + chars + lines + sizeof END + 2;
    char *text = malloc(chars + 1);
    uint8_t *buf = malloc(cap);
    if (text == NULL || buf == NULL) {
        free(text);
        free(buf);
        return hs_fail(e, HS_E_NOMEM, "age armor: out of memory");
    }
    age_b64_encode(in, len, true, text);
    size_t o = 0;
    memcpy(buf + o, BEGIN, sizeof BEGIN - 1);
    o += sizeof BEGIN - 1;
    buf[o++] = '\n';
    for (size_t pos = 0; pos < chars; pos += AGE_COLUMNS) {
        size_t n = chars - pos > AGE_COLUMNS ? AGE_COLUMNS : chars - pos;
        memcpy(buf + o, text + pos, n);
        o += n;
        buf[o++] = '\n';
    }
    memcpy(buf + o, END, sizeof END - 1);
    o += sizeof END - 1;
    buf[o++] = '\n';
    free(text);
    *out = buf;
    *out_len = o;
    return HS_OK;
}

typedef struct reader {
    const uint8_t *in;
    size_t len, pos, line_no;
} reader;

/* The next line without its LF and one CR before it; false at the end. */
static bool next_line(reader *r, const char **line, size_t *n)
{
    if (r->pos >= r->len)
        return false;
    const uint8_t *start = r->in + r->pos;
    const uint8_t *lf = memchr(start, '\n', r->len - r->pos);
    size_t raw = lf ? (size_t)(lf - start) : r->len - r->pos;
    r->pos += raw + (lf ? 1 : 0);
    r->line_no++;
    if (raw > 0 && start[raw - 1] == '\r')
        raw--;
    *line = (const char *)start;
    *n = raw;
    return true;
}

static bool line_is(const char *line, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(line, want, n) == 0;
}

static bool all_space(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_space(p[i]))
            return false;
    }
    return true;
}

static hs_result skip_leading(reader *r, hs_error *e)
{
    const char *line;
    size_t n;
    for (;;) {
        if (!next_line(r, &line, &n))
            return hs_fail(e, HS_E_FORMAT, "age armor: no \"%s\" line", BEGIN);
        if (!all_space((const uint8_t *)line, n)) {
            if (!line_is(line, n, BEGIN))
                return hs_fail(e, HS_E_FORMAT,
                               "age armor: line %zu is not \"%s\" (nothing may precede it "
                               "but blank lines)",
                               r->line_no, BEGIN);
            return HS_OK;
        }
        if (r->pos > MAX_WHITESPACE)
            return hs_fail(e, HS_E_FORMAT, "age armor: more than %d bytes of leading whitespace",
                           MAX_WHITESPACE);
    }
}

static hs_result check_trailing(const reader *r, hs_error *e)
{
    size_t n = r->len - r->pos;
    if (!all_space(r->in + r->pos, n))
        return hs_fail(e, HS_E_FORMAT, "age armor: data after the \"%s\" line", END);
    if (n >= MAX_WHITESPACE)
        return hs_fail(e, HS_E_FORMAT, "age armor: %zu bytes of trailing whitespace (limit %d)",
                       n, MAX_WHITESPACE - 1);
    return HS_OK;
}

static hs_result decode_lines(reader *r, uint8_t *out, size_t *out_len, hs_error *e)
{
    const char *line;
    size_t n;
    size_t o = 0;
    for (;;) {
        if (!next_line(r, &line, &n))
            return hs_fail(e, HS_E_FORMAT, "age armor: no \"%s\" line (truncated)", END);
        if (line_is(line, n, END))
            break;
        if (n > AGE_COLUMNS)
            return hs_fail(e, HS_E_FORMAT, "age armor: line %zu is longer than %d columns",
                           r->line_no, AGE_COLUMNS);
        if (n == 0)
            return hs_fail(e, HS_E_FORMAT, "age armor: line %zu is empty", r->line_no);
        size_t got;
        if (!age_b64_decode(line, n, true, out + o, AGE_BYTES_PER_LINE, &got))
            return hs_fail(e, HS_E_FORMAT,
                           "age armor: line %zu is not canonical padded base64", r->line_no);
        o += got;
        if (got < AGE_BYTES_PER_LINE) {
            /* Only the last line may be short: the end line must follow. */
            if (!next_line(r, &line, &n) || !line_is(line, n, END))
                return hs_fail(e, HS_E_FORMAT,
                               "age armor: line %zu is short but not followed by \"%s\"",
                               r->line_no - 1, END);
            break;
        }
    }
    *out_len = o;
    return HS_OK;
}

hs_result age_armor_decode(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len,
                           hs_error *e)
{
    reader r = {.in = in, .len = len, .pos = 0, .line_no = 0};
    hs_result rc = skip_leading(&r, e);
    if (rc != HS_OK)
        return rc;
    /* The decoded data is at most 3/4 of the remaining text. */
    uint8_t *buf = malloc((len - r.pos) / 4 * 3 + AGE_BYTES_PER_LINE);
    if (buf == NULL)
        return hs_fail(e, HS_E_NOMEM, "age armor: out of memory");
    size_t n = 0;
    rc = decode_lines(&r, buf, &n, e);
    if (rc == HS_OK)
        rc = check_trailing(&r, e);
    if (rc != HS_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = n;
    return HS_OK;
}
