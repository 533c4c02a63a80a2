/* tlog-proof inclusion proofs (see proof.h). */
#include "audit/proof.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/note.h"
#include "util/encoding.h"

/* A growing text buffer; on allocation failure it stays NULL. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool failed;
} sbuf;

static void sb_add(sbuf *b, const char *text, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *bigger = realloc(b->s, cap);
        if (bigger == NULL) {
            b->failed = true;
            return;
        }
        b->s = bigger;
        b->cap = cap;
    }
    memcpy(b->s + b->len, text, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *text)
{
    sb_add(b, text, strlen(text));
}

static void sb_b64_line(sbuf *b, const char *prefix, const uint8_t *data, size_t n)
{
    char *enc = hs_base64_encode(data, n);
    if (enc == NULL) {
        b->failed = true;
        return;
    }
    sb_str(b, prefix);
    sb_str(b, enc);
    sb_str(b, "\n");
    free(enc);
}

hs_result hs_proof_make(const hs_auditlog *log, size_t index, const char *note, size_t note_len,
                        char **text, hs_error *e)
{
    *text = NULL;
    hs_checkpoint cp;
    hs_result r = hs_checkpoint_parse(note, note_len, &cp, e);
    if (r != HS_OK)
        return r;
    if (index >= cp.size || cp.size > log->count)
        return hs_fail(e, HS_E_NOTFOUND, "entry %zu is not covered by the latest checkpoint (size "
                                         "%llu); run any signing command to sign a new one",
                       index, (unsigned long long)cp.size);
    uint8_t *path = malloc(HS_MERKLE_MAX_PROOF * HS_MERKLE_HASH_LEN);
    if (path == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    size_t path_len;
    r = hs_merkle_inclusion_proof(log->leaves, (size_t)cp.size, index, path, &path_len, e);
    if (r != HS_OK) {
        free(path);
        return r;
    }
    sbuf b = {0};
    char line[64];
    size_t entry_len;
    const char *entry = hs_auditlog_entry(log, index, &entry_len);
    sb_str(&b, HS_TLOG_PROOF_HEADER "\n");
    sb_b64_line(&b, "extra ", (const uint8_t *)entry, entry_len);
    snprintf(line, sizeof line, "index %zu\n", index);
    sb_str(&b, line);
    for (size_t i = 0; i < path_len; i++)
        sb_b64_line(&b, "", path + i * HS_MERKLE_HASH_LEN, HS_MERKLE_HASH_LEN);
    sb_str(&b, "\n");
    sb_add(&b, note, note_len);
    free(path);
    if (b.failed) {
        free(b.s);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    *text = b.s;
    return HS_OK;
}

void hs_proof_result_free(hs_proof_result *res)
{
    free(res->entry);
    memset(res, 0, sizeof *res);
}

/* Splits off the next line of [*pos, len); false at the end. */
static bool next_line(const char *text, size_t len, size_t *pos, char *buf, size_t cap)
{
    if (*pos >= len)
        return false;
    const char *nl = memchr(text + *pos, '\n', len - *pos);
    if (nl == NULL)
        return false;
    size_t n = (size_t)(nl - (text + *pos));
    if (n >= cap)
        return false;
    memcpy(buf, text + *pos, n);
    buf[n] = '\0';
    *pos += n + 1;
    return true;
}

static hs_result parse_index(const char *line, uint64_t *index, hs_error *e)
{
    if (strncmp(line, "index ", 6) != 0 || line[6] < '0' || line[6] > '9' ||
        (line[6] == '0' && line[7] != '\0'))
        return hs_fail(e, HS_E_FORMAT, "tlog proof: expected an \"index N\" line");
    uint64_t v = 0;
    for (const char *p = line + 6; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return hs_fail(e, HS_E_FORMAT, "tlog proof: malformed index");
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *index = v;
    return HS_OK;
}

/* Reads "extra" lines (keeping the first as the entry) and the index. */
static hs_result parse_head(const char *text, size_t len, size_t *pos, hs_proof_result *res,
                            hs_error *e)
{
    static char line[131072];
    if (!next_line(text, len, pos, line, sizeof line) || strcmp(line, HS_TLOG_PROOF_HEADER) != 0)
        return hs_fail(e, HS_E_FORMAT, "not a tlog proof (first line is not \"%s\")",
                       HS_TLOG_PROOF_HEADER);
    for (;;) {
        if (!next_line(text, len, pos, line, sizeof line))
            return hs_fail(e, HS_E_FORMAT, "tlog proof: truncated before its index line");
        if (strncmp(line, "extra ", 6) != 0)
            break;
        uint8_t *extra;
        size_t extra_len;
        if (!hs_base64_decode(line + 6, &extra, &extra_len))
            return hs_fail(e, HS_E_FORMAT, "tlog proof: an extra line is not base64");
        if (res->entry != NULL) {
            free(extra);
            continue;
        }
        res->entry = realloc(extra, extra_len + 1);
        if (res->entry == NULL) {
            free(extra);
            return hs_fail(e, HS_E_NOMEM, "out of memory");
        }
        res->entry[extra_len] = '\0';
        res->entry_len = extra_len;
    }
    if (res->entry == NULL)
        return hs_fail(e, HS_E_FORMAT, "tlog proof: no extra line carrying the audit entry");
    return parse_index(line, &res->index, e);
}

hs_result hs_proof_verify(const char *text, size_t len, EVP_PKEY *pub, hs_proof_result *res,
                          hs_error *e)
{
    memset(res, 0, sizeof *res);
    size_t pos = 0;
    hs_result r = parse_head(text, len, &pos, res, e);
    uint8_t *path = malloc(HS_MERKLE_MAX_PROOF * HS_MERKLE_HASH_LEN);
    size_t path_len = 0;
    if (path == NULL && r == HS_OK)
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    char line[128];
    while (r == HS_OK) {
        if (!next_line(text, len, &pos, line, sizeof line)) {
            r = hs_fail(e, HS_E_FORMAT, "tlog proof: truncated before its checkpoint");
            break;
        }
        if (line[0] == '\0')
            break;
        uint8_t *h;
        size_t h_len;
        if (!hs_base64_decode(line, &h, &h_len)) {
            r = hs_fail(e, HS_E_FORMAT, "tlog proof: a path line is not base64");
            break;
        }
        if (h_len != HS_MERKLE_HASH_LEN || path_len == HS_MERKLE_MAX_PROOF)
            r = hs_fail(e, HS_E_FORMAT, "tlog proof: bad path hash or too many of them");
        else
            memcpy(path + HS_MERKLE_HASH_LEN * path_len++, h, HS_MERKLE_HASH_LEN);
        free(h);
    }
    size_t text_len;
    if (r == HS_OK)
        r = hs_checkpoint_parse(text + pos, len - pos, &res->cp, e);
    if (r == HS_OK)
        r = hs_note_verify(text + pos, len - pos, res->cp.origin, pub, &text_len, e);
    if (r == HS_OK)
        r = hs_checkpoint_parse(text + pos, text_len, &res->cp, e);
    uint8_t leaf[HS_MERKLE_HASH_LEN];
    if (r == HS_OK)
        r = hs_merkle_leaf_hash((const uint8_t *)res->entry, res->entry_len, leaf, e);
    if (r == HS_OK && (res->index >= res->cp.size || res->cp.size > SIZE_MAX))
        r = hs_fail(e, HS_E_VERIFY, "tlog proof: index %llu is outside the checkpoint (size %llu)",
                    (unsigned long long)res->index, (unsigned long long)res->cp.size);
    if (r == HS_OK)
        r = hs_merkle_verify_inclusion(leaf, (size_t)res->index, (size_t)res->cp.size, path,
                                       path_len, res->cp.root, e);
    if (r == HS_E_VERIFY && res->cp.size > 0)
        hs_error_prefix(e, "tlog proof: the entry is not included in the signed checkpoint: ");
    free(path);
    if (r != HS_OK)
        hs_proof_result_free(res);
    return r;
}
