/* Pin hints: an APK with assets/com.android.hints.pins.txt gets a
 * pinlist.meta entry from apksig naming the output byte ranges of the
 * entries the hint patterns match (the platform pins them in memory).
 * Patterns are Java regular expressions matched against whole entry
 * names; they are compiled here as POSIX extended expressions, which agree
 * for the plain names and simple patterns hint files hold. */
#include "apk/apk_sign_internal.h"

#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "zip/zip_inflate.h"

#define PIN_HINT_ENTRY "assets/com.android.hints.pins.txt"
#define PIN_HINT_MAX (1u << 20)
#define PIN_MAX_PATTERNS 4096

typedef struct pin_pattern {
    regex_t re;
    uint64_t offset, size; /* within the entry's data (size UINT64_MAX: to its end) */
} pin_pattern;

struct hs_apk_pins {
    pin_pattern *p;
    size_t count;
};

void hs_apk_pins_free(hs_apk_pins *pins)
{
    if (pins == NULL)
        return;
    for (size_t i = 0; i < pins->count; i++)
        regfree(&pins->p[i].re);
    free(pins->p);
    free(pins);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == 0 || *end != 0 || errno != 0 || v < 0)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* One line, as apksig's Hints.parsePinPatterns: '#' starts a comment,
 * fields split at single spaces (trailing empty fields dropped), either a
 * pattern or "pattern start end". */
static hs_result add_line(hs_apk_pins *pins, char *line, const char *path, hs_error *e)
{
    char *hash = strchr(line, '#');
    if (hash != NULL)
        *hash = 0;
    size_t len = strlen(line);
    while (len > 0 && line[len - 1] == ' ')
        line[--len] = 0;
    char *f[4] = {line, NULL, NULL, NULL};
    size_t n = 1;
    for (char *c = line; *c && n < 4; c++)
        if (*c == ' ') {
            *c = 0;
            f[n++] = c + 1;
        }
    pin_pattern *pp = &pins->p[pins->count];
    pp->offset = 0;
    pp->size = UINT64_MAX;
    uint64_t start, end;
    if (n == 3 && (!parse_u64(f[1], &start) || !parse_u64(f[2], &end) || end < start))
        n = 0;
    if (n != 1 && n != 3)
        return hs_fail(e, HS_E_FORMAT, "%s: %s: bad pin pattern line '%s'", path, PIN_HINT_ENTRY,
                       line);
    if (n == 3) {
        pp->offset = start;
        pp->size = end - start;
    }
    char *anchored = malloc(strlen(f[0]) + 5);
    if (anchored == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", path);
    strcpy(anchored, "^(");
    strcat(anchored, f[0]);
    strcat(anchored, ")$");
    int rc = regcomp(&pp->re, anchored, REG_EXTENDED | REG_NOSUB);
    free(anchored);
    if (rc != 0)
        return hs_fail(e, HS_E_FORMAT, "%s: %s: pattern '%s' is not a regular expression "
                       "hsmsign understands", path, PIN_HINT_ENTRY, f[0]);
    pins->count++;
    return HS_OK;
}

static hs_result parse(hs_apk_pins *pins, char *text, const char *path, hs_error *e)
{
    size_t lines = 1;
    for (char *c = text; *c; c++)
        lines += *c == '\n';
    if (lines > PIN_MAX_PATTERNS)
        return hs_fail(e, HS_E_FORMAT, "%s: %s has too many lines", path, PIN_HINT_ENTRY);
    pins->p = calloc(lines, sizeof *pins->p);
    if (pins->p == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", path);
    /* Java's split drops the trailing empty lines. */
    size_t len = strlen(text);
    while (len > 0 && text[len - 1] == '\n')
        text[--len] = 0;
    hs_result r = HS_OK;
    for (char *line = text, *next; r == HS_OK && line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = 0;
        r = add_line(pins, line, path, e);
    }
    return r;
}

hs_result hs_apk_pins_load(const hs_zip *z, hs_apk_pins **out, hs_error *e)
{
    *out = NULL;
    long i = hs_zip_find(z, PIN_HINT_ENTRY);
    if (i < 0)
        return HS_OK;
    uint8_t *data = NULL;
    size_t len = 0;
    hs_result r = hs_zip_read_entry(z, &z->entries[i], PIN_HINT_MAX, &data, &len, e);
    if (r != HS_OK)
        return r;
    hs_apk_pins *pins = calloc(1, sizeof *pins);
    char *text = malloc(len + 1);
    if (pins == NULL || text == NULL || memchr(data, 0, len) != NULL) {
        r = pins && text ? hs_fail(e, HS_E_FORMAT, "%s: %s contains a NUL byte", z->path,
                                   PIN_HINT_ENTRY)
                         : hs_fail(e, HS_E_NOMEM, "%s: out of memory", z->path);
    } else {
        memcpy(text, data, len);
        text[len] = 0;
        r = parse(pins, text, z->path, e);
    }
    free(text);
    free(data);
    if (r != HS_OK)
        hs_apk_pins_free(pins);
    else
        *out = pins;
    return r;
}

void hs_apk_pin_range(hs_apk_buf *b, uint64_t start, uint64_t end)
{
    uint64_t v[2] = {start, end - start};
    for (int k = 0; k < 2; k++) {
        uint32_t c = v[k] > INT32_MAX ? INT32_MAX : (uint32_t)v[k];
        uint8_t be[4] = {(uint8_t)(c >> 24), (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
        hs_apk_buf_append(b, be, 4);
    }
}

void hs_apk_pins_entry(const hs_apk_pins *pins, const hs_zip_entry *ent, uint64_t lfh,
                       uint64_t data, uint64_t end, hs_apk_buf *ranges)
{
    char *name = strndup(ent->name, ent->name_len);
    bool any = false;
    for (size_t i = 0; name != NULL && i < pins->count; i++) {
        const pin_pattern *pp = &pins->p[i];
        if (strlen(name) != ent->name_len || regexec(&pp->re, name, 0, NULL, 0) != 0)
            continue;
        /* apksig's ClampToAbsoluteByteRange */
        if (end - data < pp->offset)
            continue;
        uint64_t from = data + pp->offset;
        uint64_t size = end - from < pp->size ? end - from : pp->size;
        hs_apk_pin_range(ranges, from, from + size);
        any = true;
    }
    if (name == NULL)
        ranges->failed = true;
    if (any)
        hs_apk_pin_range(ranges, lfh, data);
}
