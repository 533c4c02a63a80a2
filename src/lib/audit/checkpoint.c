/* C2SP tlog-checkpoint bodies (see checkpoint.h). */
#include "audit/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/encoding.h"

hs_result hs_checkpoint_format(const hs_checkpoint *c, char **text, hs_error *e)
{
    *text = NULL;
    char *root = hs_base64_encode(c->root, HS_MERKLE_HASH_LEN);
    if (root == NULL ||
        asprintf(text, "%s\n%llu\n%s\n", c->origin, (unsigned long long)c->size, root) < 0) {
        free(root);
        *text = NULL;
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    free(root);
    return HS_OK;
}

/* Copies line number `which` (0-based) of text into buf; false when the
 * text has fewer lines or the line does not fit. */
static bool get_line(const char *text, size_t len, unsigned which, char *buf, size_t cap)
{
    size_t pos = 0;
    for (unsigned i = 0;; i++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        if (nl == NULL)
            return false;
        size_t llen = (size_t)(nl - (text + pos));
        if (i == which) {
            if (llen >= cap)
                return false;
            memcpy(buf, text + pos, llen);
            buf[llen] = '\0';
            return true;
        }
        pos += llen + 1;
    }
}

static bool parse_size(const char *s, uint64_t *out)
{
    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return true;
}

hs_result hs_checkpoint_parse(const char *text, size_t len, hs_checkpoint *c, hs_error *e)
{
    memset(c, 0, sizeof *c);
    char size_line[32], root_line[64];
    if (!get_line(text, len, 0, c->origin, sizeof c->origin) || c->origin[0] == '\0')
        return hs_fail(e, HS_E_FORMAT, "checkpoint: missing or overlong origin line");
    if (!get_line(text, len, 1, size_line, sizeof size_line) || !parse_size(size_line, &c->size))
        return hs_fail(e, HS_E_FORMAT, "checkpoint '%s': the second line is not a tree size",
                       c->origin);
    uint8_t *root;
    size_t root_len;
    if (!get_line(text, len, 2, root_line, sizeof root_line) ||
        !hs_base64_decode(root_line, &root, &root_len))
        return hs_fail(e, HS_E_FORMAT, "checkpoint '%s': the third line is not a base64 root hash",
                       c->origin);
    bool ok = root_len == HS_MERKLE_HASH_LEN;
    if (ok)
        memcpy(c->root, root, HS_MERKLE_HASH_LEN);
    free(root);
    if (!ok)
        return hs_fail(e, HS_E_FORMAT, "checkpoint '%s': the root hash is %zu bytes, expected 32",
                       c->origin, root_len);
    return HS_OK;
}
