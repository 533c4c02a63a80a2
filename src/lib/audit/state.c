/* The compact range of the log's tree next to the checkpoint (see
 * state.h). */
#include "audit/state.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/log.h"
#include "audit/record.h"
#include "util/encoding.h"

#define H HS_MERKLE_HASH_LEN
/* Bounds what a corrupt or huge tail makes the gate allocate. */
#define MAX_TAIL_BYTES ((uint64_t)1 << 32)
/* Longest entry line the gate re-reads (record.c's next_seq has the same). */
#define MAX_ENTRY_BYTES 65536u

void hs_auditstate_init(hs_auditstate *s)
{
    memset(s, 0, sizeof *s);
}

hs_result hs_auditstate_push_leaf(hs_auditstate *s, const uint8_t leaf[H], size_t line_len,
                                  hs_error *e)
{
    if (s->size == UINT64_MAX || s->end > UINT64_MAX - line_len - 1)
        return hs_fail(e, HS_E_VERIFY, "audit log too large");
    uint8_t cur[H];
    memcpy(cur, leaf, H);
    s->npath = 0;
    hs_result r = HS_OK;
    /* Each trailing zero bit of the new size merges the new subtree with
     * the one on its left, which is then a sibling on the new leaf's path. */
    for (uint64_t t = s->size + 1; r == HS_OK && (t & 1) == 0; t >>= 1) {
        s->nroots--;
        memcpy(s->path[s->npath++], s->roots[s->nroots], H);
        r = hs_merkle_node_hash(s->roots[s->nroots], cur, cur, e);
    }
    if (r != HS_OK)
        return r;
    memcpy(s->roots[s->nroots++], cur, H);
    memcpy(s->last_leaf, leaf, H);
    s->size++;
    s->last_start = s->end;
    s->end += line_len + 1;
    return HS_OK;
}

hs_result hs_auditstate_root(const hs_auditstate *s, uint8_t out[H], hs_error *e)
{
    if (s->nroots == 0)
        return hs_merkle_root(NULL, 0, out, e);
    uint8_t acc[H];
    memcpy(acc, s->roots[s->nroots - 1], H);
    hs_result r = HS_OK;
    for (size_t i = s->nroots - 1; r == HS_OK && i-- > 0;)
        r = hs_merkle_node_hash(s->roots[i], acc, acc, e);
    if (r == HS_OK)
        memcpy(out, acc, H);
    return r;
}

static size_t trailing_zeros(uint64_t v)
{
    return v == 0 ? 0 : (size_t)__builtin_ctzll(v);
}

hs_result hs_auditstate_check(const hs_auditstate *s, const hs_checkpoint *cp, hs_error *e)
{
    if (s->size != cp->size)
        return hs_fail(e, HS_E_VERIFY, HS_AUDIT_STATE_FILE " is for %llu entries, the checkpoint "
                                       "for %llu", (unsigned long long)s->size,
                       (unsigned long long)cp->size);
    if (s->nroots != (size_t)__builtin_popcountll(s->size) ||
        s->npath != trailing_zeros(s->size) ||
        (s->size > 0 && (s->last_start >= s->end)) || (s->size == 0 && s->end != 0))
        return hs_fail(e, HS_E_VERIFY, HS_AUDIT_STATE_FILE " is malformed for %llu entries",
                       (unsigned long long)s->size);
    uint8_t root[H];
    hs_result r = hs_auditstate_root(s, root, e);
    if (r != HS_OK)
        return r;
    if (!hs_ct_equal(root, cp->root, H))
        return hs_fail(e, HS_E_VERIFY, HS_AUDIT_STATE_FILE " does not reproduce the root of the "
                                       "signed checkpoint (size %llu): it was altered",
                       (unsigned long long)cp->size);
    if (s->size == 0)
        return HS_OK;
    uint8_t cur[H];
    memcpy(cur, s->last_leaf, H);
    for (size_t i = 0; r == HS_OK && i < s->npath; i++)
        r = hs_merkle_node_hash(s->path[i], cur, cur, e);
    if (r == HS_OK && !hs_ct_equal(cur, s->roots[s->nroots - 1], H))
        r = hs_fail(e, HS_E_VERIFY, HS_AUDIT_STATE_FILE ": the last entry's hash is not in the "
                                    "signed tree: it was altered");
    return r;
}

static json_t *hex_array(const uint8_t (*hashes)[H], size_t n)
{
    json_t *a = json_array();
    char hex[2 * H + 1];
    for (size_t i = 0; a != NULL && i < n; i++) {
        hs_hex_encode(hashes[i], H, hex);
        if (json_array_append_new(a, json_string(hex)) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

hs_result hs_auditstate_format(const hs_auditstate *s, char **text, size_t *len, hs_error *e)
{
    char hex[2 * H + 1];
    hs_hex_encode(s->last_leaf, H, hex);
    json_t *o = json_pack("{s:i,s:I,s:I,s:I,s:s,s:o*,s:o*}", "v", 1, "size",
                          (json_int_t)s->size, "last_start", (json_int_t)s->last_start, "end",
                          (json_int_t)s->end, "last_leaf", hex, "roots",
                          hex_array((const uint8_t(*)[H])s->roots, s->nroots), "path",
                          hex_array((const uint8_t(*)[H])s->path, s->npath));
    *text = o != NULL && json_object_size(o) == 7
                ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)
                : NULL;
    json_decref(o);
    if (*text == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    *len = strlen(*text);
    return HS_OK;
}

static bool parse_hashes(json_t *a, uint8_t (*out)[H], size_t *n)
{
    if (!json_is_array(a) || json_array_size(a) > HS_AUDITSTATE_MAX)
        return false;
    *n = json_array_size(a);
    for (size_t i = 0; i < *n; i++) {
        const char *hex = json_string_value(json_array_get(a, i));
        if (hex == NULL || strlen(hex) != 2 * H || !hs_hex_decode(hex, out[i], H))
            return false;
    }
    return true;
}

static bool get_u64(json_t *o, const char *key, uint64_t *v)
{
    json_t *j = json_object_get(o, key);
    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return false;
    *v = (uint64_t)json_integer_value(j);
    return true;
}

hs_result hs_auditstate_parse(const char *text, size_t len, hs_auditstate *s, hs_error *e)
{
    hs_auditstate_init(s);
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    uint64_t v = 0;
    const char *leaf = json_string_value(json_object_get(o, "last_leaf"));
    bool ok = json_is_object(o) && get_u64(o, "v", &v) && v == 1 && get_u64(o, "size", &s->size) &&
              get_u64(o, "last_start", &s->last_start) && get_u64(o, "end", &s->end) &&
              leaf != NULL && strlen(leaf) == 2 * H && hs_hex_decode(leaf, s->last_leaf, H) &&
              parse_hashes(json_object_get(o, "roots"), s->roots, &s->nroots) &&
              parse_hashes(json_object_get(o, "path"), s->path, &s->npath);
    json_decref(o);
    if (!ok)
        return hs_fail(e, HS_E_FORMAT, HS_AUDIT_STATE_FILE " is not a checkpoint state");
    return HS_OK;
}

static hs_result read_at(int fd, uint8_t *buf, size_t len, uint64_t off, hs_error *e)
{
    size_t done = 0;
    while (done < len) {
        ssize_t got = pread(fd, buf + done, len - done, (off_t)(off + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return hs_fail(e, HS_E_VERIFY, HS_AUDIT_ENTRIES_FILE ": cannot read: %s",
                           got < 0 ? strerror(errno) : "file shrank while read");
        done += (size_t)got;
    }
    return HS_OK;
}

/* Entry size-1 is still where the state says, and still the entry the
 * signed tree holds. */
static hs_result check_last(const hs_auditstate *s, const uint8_t *buf, hs_error *e)
{
    size_t len = (size_t)(s->end - s->last_start) - 1;
    uint8_t leaf[H];
    if (buf[len] != '\n' || memchr(buf, '\n', len) != NULL)
        return hs_fail(e, HS_E_VERIFY, HS_AUDIT_ENTRIES_FILE ": entry %llu is not at bytes "
                                       "%llu-%llu where the checkpoint left it: the file was "
                                       "rewritten", (unsigned long long)(s->size - 1),
                       (unsigned long long)s->last_start, (unsigned long long)s->end);
    hs_result r = hs_merkle_leaf_hash(buf, len, leaf, e);
    if (r == HS_OK && !hs_ct_equal(leaf, s->last_leaf, H))
        r = hs_fail(e, HS_E_VERIFY, HS_AUDIT_ENTRIES_FILE ": entry %llu (the last one the "
                                    "checkpoint covers) was changed",
                    (unsigned long long)(s->size - 1));
    return r;
}

/* The bytes before last_start need no reading: the previous newline is
 * checked when last_start > 0 so that entry size-1 is a whole line. */
hs_result hs_auditstate_extend(hs_auditstate *s, int fd, hs_error *e)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return hs_fail(e, HS_E_IO, HS_AUDIT_ENTRIES_FILE ": %s", strerror(errno));
    uint64_t fsize = (uint64_t)st.st_size;
    if (fsize < s->end)
        return hs_fail(e, HS_E_VERIFY, "the checkpoint covers %llu entries, which end at byte "
                                       "%llu, but " HS_AUDIT_ENTRIES_FILE " has only %llu bytes: "
                                       "entries were removed",
                       (unsigned long long)s->size, (unsigned long long)s->end,
                       (unsigned long long)fsize);
    uint64_t from = s->size > 0 ? s->last_start - (s->last_start > 0) : 0;
    if (s->size > 0 && s->end - s->last_start > MAX_ENTRY_BYTES)
        return hs_fail(e, HS_E_VERIFY, HS_AUDIT_STATE_FILE ": last entry longer than 64 KiB");
    if (fsize - from > MAX_TAIL_BYTES)
        return hs_fail(e, HS_E_VERIFY, HS_AUDIT_ENTRIES_FILE ": too many bytes after the checkpoint");
    size_t n = (size_t)(fsize - from);
    uint8_t *buf = malloc(n + 1);
    if (buf == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    hs_result r = read_at(fd, buf, n, from, e);
    size_t pos = (size_t)(s->end - from);
    if (r == HS_OK && s->last_start > 0 && buf[0] != '\n')
        r = hs_fail(e, HS_E_VERIFY, HS_AUDIT_ENTRIES_FILE ": no entry starts at byte %llu where "
                                    "the checkpoint's last entry did: the file was rewritten",
                    (unsigned long long)s->last_start);
    if (r == HS_OK && s->size > 0)
        r = check_last(s, buf + (s->last_start - from), e);
    /* Complete lines only: bytes after the last newline are a torn append. */
    for (uint8_t *nl; r == HS_OK && (nl = memchr(buf + pos, '\n', n - pos)) != NULL;) {
        size_t len = (size_t)(nl - (buf + pos));
        uint8_t leaf[H];
        r = hs_auditlog_check_entry((const char *)buf + pos, len, (size_t)s->size, e);
        if (r == HS_OK)
            r = hs_merkle_leaf_hash(buf + pos, len, leaf, e);
        if (r == HS_OK)
            r = hs_auditstate_push_leaf(s, leaf, len, e);
        pos += len + 1;
    }
    free(buf);
    return r;
}
