/* The age header: intro line, recipient stanzas, and the MAC line.
 *
 *   age-encryption.org/v1
 *   -> X25519 <base64 share>
 *   <base64 body, 64 columns per line, ending with a shorter line>
 *   --- <base64 HMAC-SHA256 of everything up to and including "---">
 *
 * The parser is as strict as the reference implementation: LF line
 * endings only, canonical unpadded base64, arguments of visible ASCII,
 * and every stanza body ends with a line shorter than 64 columns (an
 * empty one when the body fills its last line). */
#include <stdlib.h>
#include <string.h>

#include "backup/age_internal.h"
#include "util/secmem.h"

static const char INTRO[] = "age-encryption.org/v1";
static const char VERSION_PREFIX[] = "age-encryption.org/";

void age_stanza_free(age_stanza *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_args; i++)
        free(s->args[i]);
    free(s->args);
    if (s->body != NULL) {
        hs_wipe(s->body, s->body_len);
        free(s->body);
    }
    memset(s, 0, sizeof *s);
}

void age_header_free(age_header *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n_stanzas; i++)
        age_stanza_free(&h->stanzas[i]);
    free(h->stanzas);
    memset(h, 0, sizeof *h);
}

hs_result age_stanza_new(age_stanza *s, const char *const *args, const uint8_t *body,
                         size_t body_len, hs_error *e)
{
    memset(s, 0, sizeof *s);
    size_t n = 0;
    while (args[n] != NULL)
        n++;
    /* calloc(0) may return NULL, which would read as out of memory. */
    s->args = calloc(n > 0 ? n : 1, sizeof *s->args);
    s->body = malloc(body_len > 0 ? body_len : 1);
    if (s->args == NULL || s->body == NULL)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        s->args[i] = strdup(args[i]);
        if (s->args[i] == NULL)
            goto nomem;
        s->n_args = i + 1;
    }
    if (body_len > 0)
        memcpy(s->body, body, body_len);
    s->body_len = body_len;
    return HS_OK;
nomem:
    age_stanza_free(s);
    return hs_fail(e, HS_E_NOMEM, "age: out of memory building a stanza");
}

/* ---------------------------------------------------------------- parse */

typedef struct line_reader {
    const uint8_t *in;
    size_t len;
    size_t pos;
    size_t line_no;
} line_reader;

/* The next LF-terminated line, without its LF. A header line without an
 * LF means the file was truncated. */
static hs_result next_line(line_reader *r, const char **line, size_t *line_len, hs_error *e)
{
    if (r->pos >= r->len)
        return hs_fail(e, HS_E_FORMAT, "age header: file ends after line %zu, before the MAC line",
                       r->line_no);
    const uint8_t *start = r->in + r->pos;
    const uint8_t *lf = memchr(start, '\n', r->len - r->pos);
    if (lf == NULL)
        return hs_fail(e, HS_E_FORMAT, "age header: line %zu has no line ending (truncated header)",
                       r->line_no + 1);
    *line = (const char *)start;
    *line_len = (size_t)(lf - start);
    r->pos += *line_len + 1;
    r->line_no++;
    return HS_OK;
}

static bool has_prefix(const char *line, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(line, prefix, n) == 0;
}

static bool is_visible_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126)
            return false;
    }
    return n > 0;
}

static hs_result append_arg(age_stanza *s, const char *arg, size_t n, hs_error *e)
{
    char **grown = realloc(s->args, (s->n_args + 1) * sizeof *grown);
    if (grown == NULL)
        return hs_fail(e, HS_E_NOMEM, "age header: out of memory");
    s->args = grown;
    s->args[s->n_args] = strndup(arg, n);
    if (s->args[s->n_args] == NULL)
        return hs_fail(e, HS_E_NOMEM, "age header: out of memory");
    s->n_args++;
    return HS_OK;
}

/* "-> type arg..." : arguments separated by single spaces, each non-empty
 * visible ASCII. */
static hs_result parse_stanza_line(const char *line, size_t len, size_t line_no, age_stanza *s,
                                   hs_error *e)
{
    if (len < 3 || line[2] != ' ')
        return hs_fail(e, HS_E_FORMAT,
                       "age header: line %zu: stanza line must start with \"-> \" and a type",
                       line_no);
    size_t pos = 3;
    for (;;) {
        const char *sp = memchr(line + pos, ' ', len - pos);
        size_t arg_len = sp ? (size_t)(sp - (line + pos)) : len - pos;
        if (!is_visible_ascii(line + pos, arg_len))
            return hs_fail(e, HS_E_FORMAT,
                           "age header: line %zu: stanza argument %zu is empty or has a "
                           "character outside visible ASCII",
                           line_no, s->n_args + 1);
        hs_result rc = append_arg(s, line + pos, arg_len, e);
        if (rc != HS_OK)
            return rc;
        if (sp == NULL)
            return HS_OK;
        pos += arg_len + 1;
    }
}

/* Body lines: full 64-column lines, then one shorter (possibly empty)
 * line that ends the body. */
static hs_result parse_stanza_body(line_reader *r, age_stanza *s, hs_error *e)
{
    for (;;) {
        const char *line;
        size_t len;
        hs_result rc = next_line(r, &line, &len, e);
        if (rc != HS_OK)
            return rc;
        if (len > AGE_COLUMNS)
            return hs_fail(e, HS_E_FORMAT,
                           "age header: line %zu: stanza body line longer than %d columns",
                           r->line_no, AGE_COLUMNS);
        uint8_t chunk[AGE_BYTES_PER_LINE];
        size_t got;
        if (!age_b64_decode(line, len, false, chunk, sizeof chunk, &got))
            return hs_fail(e, HS_E_FORMAT,
                           "age header: line %zu: stanza body is not canonical unpadded base64 "
                           "(or the stanza lacks its final short line)",
                           r->line_no);
        if (got > 0) {
            uint8_t *grown = malloc(s->body_len + got);
            if (grown == NULL)
                return hs_fail(e, HS_E_NOMEM, "age header: out of memory");
            if (s->body_len > 0)
                memcpy(grown, s->body, s->body_len);
            memcpy(grown + s->body_len, chunk, got);
            if (s->body != NULL) {
                hs_wipe(s->body, s->body_len); /* bodies hold wrapped keys */
                free(s->body);
            }
            s->body = grown;
            s->body_len += got;
            hs_wipe(chunk, got);
        }
        if (len < AGE_COLUMNS)
            return HS_OK;
    }
}

static hs_result parse_mac_line(const char *line, size_t len, size_t line_no, age_header *h,
                                hs_error *e)
{
    size_t mac_chars = age_b64_encoded_len(AGE_MAC_LEN, false);
    size_t got;
    if (len != 4 + mac_chars || line[3] != ' ')
        return hs_fail(e, HS_E_FORMAT,
                       "age header: line %zu: MAC line must be \"--- \" and %zu base64 "
                       "characters",
                       line_no, mac_chars);
    if (!age_b64_decode(line + 4, mac_chars, false, h->mac, sizeof h->mac, &got) ||
        got != AGE_MAC_LEN)
        return hs_fail(e, HS_E_FORMAT,
                       "age header: line %zu: MAC is not canonical unpadded base64", line_no);
    return HS_OK;
}

static hs_result parse_intro(line_reader *r, hs_error *e)
{
    const char *line;
    size_t len;
    if (r->len == 0)
        return hs_fail(e, HS_E_FORMAT, "age header: file is empty");
    hs_result rc = next_line(r, &line, &len, e);
    if (rc != HS_OK)
        return hs_fail(e, HS_E_FORMAT, "age header: not an age file (no intro line)");
    if (len == strlen(INTRO) && memcmp(line, INTRO, len) == 0)
        return HS_OK;
    if (len > 0 && line[len - 1] == '\r')
        return hs_fail(e, HS_E_FORMAT,
                       "age header: not an age v1 file (lines end with CRLF; was the file "
                       "converted as text?)");
    if (has_prefix(line, len, VERSION_PREFIX) && is_visible_ascii(line, len))
        return hs_fail(e, HS_E_FORMAT, "age header: unsupported version \"%.*s\" (only v1 is)",
                       (int)(len > 64 ? 64 : len), line);
    return hs_fail(e, HS_E_FORMAT,
                   "age header: not an age v1 file (the first line is not \"%s\")", INTRO);
}

/* Geometric growth: a hostile header with millions of tiny stanzas must
 * not cost quadratic time. */
static hs_result add_stanza(age_header *h, age_stanza **out, hs_error *e)
{
    if (h->n_stanzas == h->stanzas_cap) {
        size_t cap = h->stanzas_cap ? h->stanzas_cap * 2 : 4;
        age_stanza *grown =
            cap < SIZE_MAX / sizeof *grown ? realloc(h->stanzas, cap * sizeof *grown) : NULL;
        if (grown == NULL)
            return hs_fail(e, HS_E_NOMEM, "age header: out of memory");
        h->stanzas = grown;
        h->stanzas_cap = cap;
    }
    *out = &h->stanzas[h->n_stanzas++];
    memset(*out, 0, sizeof **out);
    return HS_OK;
}

hs_result age_header_parse(const uint8_t *in, size_t len, age_header *h, hs_error *e)
{
    memset(h, 0, sizeof *h);
    line_reader r = {.in = in, .len = len, .pos = 0, .line_no = 0};
    hs_result rc = parse_intro(&r, e);
    while (rc == HS_OK) {
        const char *line;
        size_t line_len;
        size_t line_start = r.pos;
        rc = next_line(&r, &line, &line_len, e);
        if (rc != HS_OK)
            break;
        if (has_prefix(line, line_len, "---")) {
            if (h->n_stanzas == 0) {
                rc = hs_fail(e, HS_E_FORMAT, "age header: no recipient stanza before the MAC");
                break;
            }
            rc = parse_mac_line(line, line_len, r.line_no, h, e);
            if (rc == HS_OK) {
                h->mac_input_len = line_start + 3;
                h->payload_offset = r.pos;
                return HS_OK;
            }
        } else if (has_prefix(line, line_len, "->")) {
            age_stanza *s = NULL;
            rc = add_stanza(h, &s, e);
            if (rc == HS_OK)
                rc = parse_stanza_line(line, line_len, r.line_no, s, e);
            if (rc == HS_OK)
                rc = parse_stanza_body(&r, s, e);
        } else {
            rc = hs_fail(e, HS_E_FORMAT,
                         "age header: line %zu is neither a stanza (\"-> \") nor the MAC line "
                         "(\"--- \")",
                         r.line_no);
        }
    }
    age_header_free(h);
    return rc;
}

/* ------------------------------------------------------------ serialize */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    bool failed;
} buf;

static void buf_put(buf *b, const void *data, size_t n)
{
    /* n == 0 returns too: memcpy into a still-NULL b->p is undefined even
     * for zero bytes. */
    if (b->failed || n == 0)
        return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n && cap < SIZE_MAX / 2)
            cap *= 2;
        uint8_t *grown = cap - b->len >= n ? realloc(b->p, cap) : NULL;
        if (grown == NULL) {
            b->failed = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_puts(buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static hs_result put_stanza(buf *b, const age_stanza *s, hs_error *e)
{
    buf_puts(b, "->");
    for (size_t i = 0; i < s->n_args; i++) {
        buf_puts(b, " ");
        buf_puts(b, s->args[i]);
    }
    buf_puts(b, "\n");
    size_t chars = age_b64_encoded_len(s->body_len, false);
    char *text = malloc(chars + 1);
    if (text == NULL)
        return hs_fail(e, HS_E_NOMEM, "age: out of memory");
    age_b64_encode(s->body, s->body_len, false, text);
    /* Full lines, then always a short final line (empty if need be). */
    size_t pos = 0;
    do {
        size_t n = chars - pos > AGE_COLUMNS ? AGE_COLUMNS : chars - pos;
        buf_put(b, text + pos, n);
        buf_puts(b, "\n");
        pos += n;
        if (n < AGE_COLUMNS)
            break;
    } while (true);
    free(text);
    return HS_OK;
}

hs_result age_header_mac(const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t *header,
                         size_t len, uint8_t mac[AGE_MAC_LEN], hs_error *e)
{
    uint8_t mac_key[32];
    hs_result rc = age_hkdf_sha256(file_key, AGE_FILE_KEY_LEN, NULL, 0, "header", mac_key,
                                   sizeof mac_key, e);
    if (rc == HS_OK)
        rc = age_hmac_sha256(mac_key, sizeof mac_key, header, len, mac, e);
    hs_wipe(mac_key, sizeof mac_key);
    return rc;
}

hs_result age_header_serialize(const age_stanza *stanzas, size_t n,
                               const uint8_t file_key[AGE_FILE_KEY_LEN], uint8_t **out,
                               size_t *out_len, hs_error *e)
{
    buf b = {0};
    hs_result rc = HS_OK;
    buf_puts(&b, INTRO);
    buf_puts(&b, "\n");
    for (size_t i = 0; i < n && rc == HS_OK; i++)
        rc = put_stanza(&b, &stanzas[i], e);
    buf_puts(&b, "---");
    uint8_t mac[AGE_MAC_LEN];
    if (rc == HS_OK && !b.failed)
        rc = age_header_mac(file_key, b.p, b.len, mac, e);
    if (rc == HS_OK && !b.failed) {
        char text[64];
        age_b64_encode(mac, sizeof mac, false, text);
        buf_puts(&b, " ");
        buf_puts(&b, text);
        buf_puts(&b, "\n");
    }
    if (rc == HS_OK && b.failed)
        rc = hs_fail(e, HS_E_NOMEM, "age: out of memory writing the header");
    if (rc != HS_OK) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    *out_len = b.len;
    return HS_OK;
}
