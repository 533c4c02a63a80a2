#include "jar/jar_manifest.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_LINE 70

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

hs_result hs_jar_attrs_put(hs_jar_attrs *a, const char *name, size_t name_len, const char *value,
                           size_t value_len, hs_error *e)
{
    char *v = dup_n(value, value_len);
    if (v == NULL)
        return hs_fail(e, HS_E_NOMEM, "manifest: out of memory");
    for (size_t i = 0; i < a->count; i++) {
        if (strlen(a->items[i].name) == name_len &&
            strncasecmp(a->items[i].name, name, name_len) == 0) {
            free(a->items[i].value);
            a->items[i].value = v;
            a->items[i].value_len = value_len;
            return HS_OK;
        }
    }
    hs_jar_attr *items = realloc(a->items, (a->count + 1) * sizeof *items);
    char *n = dup_n(name, name_len);
    if (items == NULL || n == NULL) {
        if (items != NULL)
            a->items = items;
        free(n);
        free(v);
        return hs_fail(e, HS_E_NOMEM, "manifest: out of memory");
    }
    a->items = items;
    a->items[a->count++] = (hs_jar_attr){n, v, value_len};
    return HS_OK;
}

const char *hs_jar_attrs_get_n(const hs_jar_attrs *a, const char *name, size_t *len)
{
    for (size_t i = 0; i < a->count; i++) {
        if (strcasecmp(a->items[i].name, name) == 0) {
            *len = a->items[i].value_len;
            return a->items[i].value;
        }
    }
    return NULL;
}

const char *hs_jar_attrs_get(const hs_jar_attrs *a, const char *name)
{
    for (size_t i = 0; i < a->count; i++)
        if (strcasecmp(a->items[i].name, name) == 0)
            return a->items[i].value;
    return NULL;
}

void hs_jar_attrs_free(hs_jar_attrs *a)
{
    for (size_t i = 0; i < a->count; i++) {
        free(a->items[i].name);
        free(a->items[i].value);
    }
    free(a->items);
    a->items = NULL;
    a->count = 0;
}

/* Next physical line [*start, *end) without its terminator (CRLF, LF, CR). */
static bool next_line(const char *text, size_t len, size_t *pos, size_t *start, size_t *end)
{
    if (*pos >= len)
        return false;
    *start = *pos;
    size_t i = *pos;
    while (i < len && text[i] != '\r' && text[i] != '\n')
        i++;
    *end = i;
    if (i < len && text[i] == '\r')
        i++;
    if (i < len && text[i] == '\n' && (i == *end || text[i - 1] == '\r'))
        i++;
    *pos = i;
    return true;
}

static hs_result flush_attr(hs_apk_buf *logical, hs_jar_attrs *out, const char *what, hs_error *e)
{
    if (logical->len == 0)
        return HS_OK;
    const char *s = (const char *)logical->data;
    const char *colon = memchr(s, ':', logical->len);
    size_t name_len = colon ? (size_t)(colon - s) : 0;
    if (colon == NULL || name_len == 0 || name_len + 1 >= logical->len || colon[1] != ' ')
        return hs_fail(e, HS_E_FORMAT, "%s: invalid manifest header line \"%.*s\"", what,
                       (int)(logical->len > 60 ? 60 : logical->len), s);
    hs_result r = hs_jar_attrs_put(out, s, name_len, colon + 2, logical->len - name_len - 2, e);
    logical->len = 0;
    return r;
}

/* Parses the section starting at *pos up to its blank line (or the end)
 * into out, leaving *pos after it. */
static hs_result parse_section(const char *text, size_t len, size_t *pos, const char *what,
                               hs_jar_attrs *out, hs_error *e)
{
    hs_apk_buf logical = {0};
    size_t start, end;
    hs_result r = HS_OK;
    while (r == HS_OK && next_line(text, len, pos, &start, &end)) {
        if (end == start)
            break;
        if (text[start] == ' ') {
            if (logical.len == 0) {
                r = hs_fail(e, HS_E_FORMAT, "%s: manifest continuation line without a header",
                            what);
                break;
            }
            hs_apk_buf_append(&logical, text + start + 1, end - start - 1);
            continue;
        }
        r = flush_attr(&logical, out, what, e);
        hs_apk_buf_append(&logical, text + start, end - start);
    }
    if (r == HS_OK)
        r = hs_apk_buf_check(&logical, what, e);
    if (r == HS_OK)
        r = flush_attr(&logical, out, what, e);
    hs_apk_buf_free(&logical);
    return r;
}

hs_result hs_jar_manifest_parse_main(const char *text, size_t len, const char *what,
                                     hs_jar_attrs *out, hs_error *e)
{
    size_t pos = 0;
    return parse_section(text, len, &pos, what, out, e);
}

hs_result hs_jar_manifest_each_section(const char *text, size_t len, const char *what,
                                       hs_jar_section_fn fn, void *ctx, hs_error *e)
{
    size_t pos = 0;
    hs_jar_attrs attrs = {0};
    hs_result r = parse_section(text, len, &pos, what, &attrs, e);
    hs_jar_attrs_free(&attrs);
    while (r == HS_OK && pos < len) {
        r = parse_section(text, len, &pos, what, &attrs, e);
        if (r == HS_OK && attrs.count > 0)
            r = fn(ctx, &attrs, e);
        hs_jar_attrs_free(&attrs);
    }
    return r;
}

hs_result hs_jar_manifest_sections(const char *text, size_t len, const char *what,
                                   hs_jar_section **out, size_t *count, hs_error *e)
{
    size_t pos = 0, cap = 0;
    hs_result r = HS_OK;
    *out = NULL;
    *count = 0;
    do {
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            hs_jar_section *n = realloc(*out, cap * sizeof *n);
            if (n == NULL) {
                r = hs_fail(e, HS_E_NOMEM, "%s: out of memory", what);
                break;
            }
            *out = n;
        }
        hs_jar_section *s = &(*out)[*count];
        memset(s, 0, sizeof *s);
        s->start = pos;
        r = parse_section(text, len, &pos, what, &s->attrs, e);
        s->len = pos - s->start;
        if (r == HS_OK && (*count == 0 || s->attrs.count > 0))
            (*count)++;
        else
            hs_jar_attrs_free(&s->attrs);
    } while (r == HS_OK && pos < len);
    if (r != HS_OK) {
        hs_jar_sections_free(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}

void hs_jar_sections_free(hs_jar_section *s, size_t count)
{
    for (size_t i = 0; i < count; i++)
        hs_jar_attrs_free(&s[i].attrs);
    free(s);
}

void hs_jar_write_attr(hs_apk_buf *b, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    size_t total = nl + 2 + vl, done = 0;
    /* Build the logical line, then cut it into 70-byte physical lines. */
    hs_apk_buf line = {0};
    hs_apk_buf_append(&line, name, nl);
    hs_apk_buf_append(&line, ": ", 2);
    hs_apk_buf_append(&line, value, vl);
    if (line.failed) {
        b->failed = true;
        hs_apk_buf_free(&line);
        return;
    }
    bool first = true;
    while (done < total) {
        size_t room = first ? MAX_LINE : MAX_LINE - 1;
        size_t n = total - done < room ? total - done : room;
        if (!first)
            hs_apk_buf_append(b, "\r\n ", 3);
        hs_apk_buf_append(b, line.data + done, n);
        done += n;
        first = false;
    }
    hs_apk_buf_append(b, "\r\n", 2);
    hs_apk_buf_free(&line);
}

static int cmp_attr(const void *x, const void *y)
{
    return strcmp((*(const hs_jar_attr *const *)x)->name, (*(const hs_jar_attr *const *)y)->name);
}

void hs_jar_write_main(hs_apk_buf *b, const hs_jar_attrs *a, const char *first_name)
{
    const char *first = hs_jar_attrs_get(a, first_name);
    if (first != NULL)
        hs_jar_write_attr(b, first_name, first);
    const hs_jar_attr **sorted = malloc((a->count ? a->count : 1) * sizeof(const hs_jar_attr *));
    if (sorted == NULL) {
        b->failed = true;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < a->count; i++)
        if (strcasecmp(a->items[i].name, first_name) != 0)
            sorted[n++] = &a->items[i];
    qsort(sorted, n, sizeof(const hs_jar_attr *), cmp_attr);
    for (size_t i = 0; i < n; i++)
        hs_jar_write_attr(b, sorted[i]->name, sorted[i]->value);
    free(sorted);
    hs_apk_buf_append(b, "\r\n", 2);
}
