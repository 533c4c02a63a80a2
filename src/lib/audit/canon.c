/* Canonical entry lines recognised without a JSON tree (see canon.h).
 * `audit verify` checks every entry of the log: at a million entries a
 * general parse (jansson allocates a node per value) was half of its
 * time. Anything unusual returns false and goes to jansson. */
#include "audit/canon.h"

#include <string.h>

/* Deeper nesting than any entry has (prior_log, reuse_of: depth 2). */
#define MAX_DEPTH 8
#define MAX_DIGITS 18 /* 10^18 - 1 fits int64_t: no overflow to check */

typedef struct cursor {
    const unsigned char *p, *end;
} cursor;

static bool next_is(const cursor *c, unsigned char ch)
{
    return c->p < c->end && *c->p == ch;
}

/* A string; *raw is its bytes between the quotes, *escaped whether it
 * holds a backslash (then raw order is not decoded order). */
static bool string(cursor *c, const unsigned char **raw, size_t *n, bool *escaped)
{
    if (!next_is(c, '"'))
        return false;
    const unsigned char *start = ++c->p;
    *escaped = false;
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (ch == '"') {
            *raw = start;
            *n = (size_t)(c->p - start);
            c->p++;
            return true;
        }
        if (ch < 0x20 || ch > 0x7e)
            return false;
        if (ch == '\\') {
            /* \uXXXX (surrogates, U+0000) is left to jansson. */
            if (c->end - c->p < 2 || strchr("\"\\/bfnrt", c->p[1]) == NULL || c->p[1] == '\0')
                return false;
            *escaped = true;
            c->p++;
        }
        c->p++;
    }
    return false;
}

static bool integer(cursor *c, int64_t *out)
{
    bool neg = next_is(c, '-');
    if (neg)
        c->p++;
    const unsigned char *start = c->p;
    int64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9' && c->p - start < MAX_DIGITS)
        v = v * 10 + (*c->p++ - '0');
    size_t digits = (size_t)(c->p - start);
    if (digits == 0 || (digits > 1 && *start == '0') ||
        (c->p < c->end && *c->p >= '0' && *c->p <= '9'))
        return false;
    /* A fraction or exponent: not an integer, and not canonical here. */
    if (next_is(c, '.') || next_is(c, 'e') || next_is(c, 'E'))
        return false;
    *out = neg ? -v : v;
    return true;
}

static bool literal(cursor *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* strcmp order of two keys without NUL or escapes. */
static int key_cmp(const unsigned char *a, size_t an, const unsigned char *b, size_t bn)
{
    int d = memcmp(a, b, an < bn ? an : bn);
    return d != 0 ? d : (an > bn) - (an < bn);
}

static bool object(cursor *c, int depth, int64_t *seq, bool *have_seq);

static bool value(cursor *c, int depth, int64_t *num, bool *is_int)
{
    *is_int = false;
    if (c->p >= c->end)
        return false;
    const unsigned char *raw;
    size_t n;
    bool escaped;
    switch (*c->p) {
    case '"':
        return string(c, &raw, &n, &escaped);
    case '{':
        return object(c, depth + 1, NULL, NULL);
    case 't':
        return literal(c, "true");
    case 'f':
        return literal(c, "false");
    case 'n':
        return literal(c, "null");
    default:
        *is_int = true;
        return integer(c, num);
    }
}

/* An object; at the top level (seq not NULL) its "seq" integer. */
static bool object(cursor *c, int depth, int64_t *seq, bool *have_seq)
{
    if (depth > MAX_DEPTH || !next_is(c, '{'))
        return false;
    c->p++;
    if (next_is(c, '}')) {
        c->p++;
        return true;
    }
    const unsigned char *prev = NULL;
    size_t prev_n = 0;
    for (;;) {
        const unsigned char *key;
        size_t n;
        bool escaped, is_int;
        int64_t num = 0;
        if (!string(c, &key, &n, &escaped) || escaped ||
            (prev != NULL && key_cmp(prev, prev_n, key, n) >= 0) || !next_is(c, ':'))
            return false;
        c->p++;
        if (!value(c, depth, &num, &is_int))
            return false;
        if (seq != NULL && n == 3 && memcmp(key, "seq", 3) == 0) {
            if (!is_int)
                return false;
            *seq = num;
            *have_seq = true;
        }
        prev = key;
        prev_n = n;
        if (next_is(c, '}')) {
            c->p++;
            return true;
        }
        if (!next_is(c, ','))
            return false;
        c->p++;
    }
}

bool hs_auditline_canonical_seq(const char *line, size_t len, int64_t *seq)
{
    cursor c = {(const unsigned char *)line, (const unsigned char *)line + len};
    bool have_seq = false;
    return object(&c, 0, seq, &have_seq) && c.p == c.end && have_seq;
}
