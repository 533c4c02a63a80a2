#include "zip/zip.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIG_EOCD 0x06054b50u
#define SIG_ZIP64_LOCATOR 0x07064b50u
#define SIG_CD 0x02014b50u
#define SIG_LFH 0x04034b50u
#define SIG_DATA_DESCRIPTOR 0x08074b50u
#define MAX_COMMENT 0xffffu
#define SIGNING_BLOCK_MAGIC "APK Sig Block 42"

/* a + b without wrapping; false when the sum does not fit. */
static bool add_u64(uint64_t a, uint64_t b, uint64_t *sum)
{
    return !__builtin_add_overflow(a, b, sum);
}

/* True when [off, off+len) lies inside [0, limit). */
static bool in_range(uint64_t off, uint64_t len, uint64_t limit)
{
    uint64_t end;
    return add_u64(off, len, &end) && end <= limit;
}

static bool is_valid_eocd_at(const hs_zip *z, uint64_t pos)
{
    const uint8_t *p = z->map + pos;
    return hs_le32(p) == SIG_EOCD && pos + HS_ZIP_EOCD_SIZE + hs_le16(p + 20) == z->size;
}

/* Finds the EOCD the way Android does (the candidate nearest the end whose
 * comment reaches exactly the end of the file) and refuses the ambiguous
 * cases Android and other tools disagree on. */
static hs_result find_eocd(hs_zip *z, hs_error *e)
{
    if (z->size < HS_ZIP_EOCD_SIZE)
        return hs_fail(e, HS_E_FORMAT, "%s: not a ZIP archive (%ju bytes, shorter than an end record)",
                       z->path, (uintmax_t)z->size);
    uint64_t last = z->size - HS_ZIP_EOCD_SIZE;
    uint64_t first = last > MAX_COMMENT ? last - MAX_COMMENT : 0;
    bool signature_seen = false;
    for (uint64_t pos = last + 1; pos-- > first;) {
        if (hs_le32(z->map + pos) != SIG_EOCD)
            continue;
        signature_seen = true;
        if (!is_valid_eocd_at(z, pos))
            continue;
        z->eocd_offset = pos;
        const uint8_t *comment = z->map + pos + HS_ZIP_EOCD_SIZE;
        size_t comment_len = hs_le16(z->map + pos + 20);
        if (memmem(comment, comment_len, "PK\x05\x06", 4) != NULL)
            return hs_fail(e, HS_E_FORMAT,
                           "%s: the archive comment contains a second end-of-central-directory record",
                           z->path);
        for (uint64_t q = pos; q-- > first;)
            if (is_valid_eocd_at(z, q))
                return hs_fail(e, HS_E_FORMAT,
                               "%s: two end-of-central-directory records (at %ju and %ju); "
                               "refusing an ambiguous archive",
                               z->path, (uintmax_t)q, (uintmax_t)pos);
        return HS_OK;
    }
    if (signature_seen)
        return hs_fail(e, HS_E_FORMAT,
                       "%s: garbage after the end-of-central-directory record, or truncated comment",
                       z->path);
    if (hs_le32(z->map) == SIG_LFH)
        return hs_fail(e, HS_E_FORMAT,
                       "%s: truncated ZIP archive (it starts like one but has no "
                       "end-of-central-directory record)",
                       z->path);
    return hs_fail(e, HS_E_FORMAT, "%s: not a ZIP archive (no end-of-central-directory record)",
                   z->path);
}

static hs_result parse_eocd(hs_zip *z, uint32_t *count, hs_error *e)
{
    const uint8_t *p = z->map + z->eocd_offset;
    if (z->eocd_offset >= 20 && hs_le32(z->map + z->eocd_offset - 20) == SIG_ZIP64_LOCATOR)
        return hs_fail(e, HS_E_FORMAT, "%s: zip64 archives are not supported", z->path);
    uint16_t disk = hs_le16(p + 4), cd_disk = hs_le16(p + 6);
    uint16_t on_disk = hs_le16(p + 8), total = hs_le16(p + 10);
    uint32_t cd_size = hs_le32(p + 12), cd_off = hs_le32(p + 16);
    if (total == 0xffff || on_disk == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu)
        return hs_fail(e, HS_E_FORMAT, "%s: zip64 archives are not supported", z->path);
    if (disk != 0 || cd_disk != 0 || on_disk != total)
        return hs_fail(e, HS_E_FORMAT, "%s: multi-disk (spanned) archives are not supported",
                       z->path);
    if (!in_range(cd_off, cd_size, z->eocd_offset))
        return hs_fail(e, HS_E_FORMAT,
                       "%s: the central directory (offset %u, %u bytes) points outside the file",
                       z->path, cd_off, cd_size);
    /* Re-signing drops these bytes (the new EOCD follows the new CD), as
     * apksigner does; a verifier must not accept bytes no digest covers. */
    if ((uint64_t)cd_off + cd_size != z->eocd_offset && !z->resign)
        return hs_fail(e, HS_E_FORMAT,
                       "%s: %ju bytes between the central directory and the end record",
                       z->path, (uintmax_t)(z->eocd_offset - cd_off - cd_size));
    z->cd_offset = cd_off;
    z->cd_size = cd_size;
    *count = total;
    return HS_OK;
}

/* The APK Signing Block, if any, ends exactly where the CD starts with a
 * size and the magic; apksig treats the bytes before it as section 1. */
static hs_result find_signing_block(hs_zip *z, hs_error *e)
{
    z->entries_end = z->cd_offset;
    z->has_signing_block = false;
    if (z->cd_offset < 24 || memcmp(z->map + z->cd_offset - 16, SIGNING_BLOCK_MAGIC, 16) != 0)
        return HS_OK;
    /* apksig finds no signing block unless the EOCD follows the CD; when
     * re-signing, the block's bytes are then data after the last entry,
     * kept verbatim in section 1 (covered by the new digests). */
    if (z->resign && z->cd_offset + z->cd_size != z->eocd_offset)
        return HS_OK;
    uint64_t size = hs_le64(z->map + z->cd_offset - 24);
    bool size_ok = size >= 24 && size <= INT32_MAX - 8u && size + 8 <= z->cd_offset;
    if (!size_ok && z->resign)
        return HS_OK;
    if (!size_ok)
        return hs_fail(e, HS_E_FORMAT, "%s: APK Signing Block has an invalid size %ju", z->path,
                       (uintmax_t)size);
    uint64_t start = z->cd_offset - (size + 8);
    if (hs_le64(z->map + start) != size && z->resign)
        return HS_OK;
    if (hs_le64(z->map + start) != size)
        return hs_fail(e, HS_E_FORMAT,
                       "%s: APK Signing Block sizes at its start and end disagree", z->path);
    z->entries_end = start;
    z->has_signing_block = true;
    return HS_OK;
}

static hs_result parse_cd_record(hs_zip *z, uint64_t *pos, size_t index, hs_error *e)
{
    uint64_t cd_end = z->cd_offset + z->cd_size;
    hs_zip_entry *ent = &z->entries[index];
    if (!in_range(*pos, HS_ZIP_CD_HEADER_SIZE, cd_end) || hs_le32(z->map + *pos) != SIG_CD)
        return hs_fail(e, HS_E_FORMAT, "%s: central directory record #%zu at %ju is malformed",
                       z->path, index + 1, (uintmax_t)*pos);
    const uint8_t *p = z->map + *pos;
    uint64_t len = HS_ZIP_CD_HEADER_SIZE + (uint64_t)hs_le16(p + 28) + hs_le16(p + 30) +
                   hs_le16(p + 32);
    if (!in_range(*pos, len, cd_end))
        return hs_fail(e, HS_E_FORMAT,
                       "%s: central directory record #%zu runs past the central directory",
                       z->path, index + 1);
    ent->flags = hs_le16(p + 8);
    ent->method = hs_le16(p + 10);
    ent->mod_time = hs_le16(p + 12);
    ent->mod_date = hs_le16(p + 14);
    ent->crc32 = hs_le32(p + 16);
    ent->compressed_size = hs_le32(p + 20);
    ent->uncompressed_size = hs_le32(p + 24);
    ent->name_len = hs_le16(p + 28);
    ent->name = (const char *)p + HS_ZIP_CD_HEADER_SIZE;
    ent->lfh_offset = hs_le32(p + 42);
    ent->cd_offset = *pos;
    ent->cd_record_len = (uint32_t)len;
    if (ent->compressed_size == 0xffffffffu || ent->uncompressed_size == 0xffffffffu ||
        ent->lfh_offset == 0xffffffffu)
        return hs_fail(e, HS_E_FORMAT, "%s: entry %.*s: zip64 archives are not supported",
                       z->path, (int)ent->name_len, ent->name);
    if (ent->name_len == 0 || (!z->allow_nul_names && memchr(ent->name, 0, ent->name_len) != NULL))
        return hs_fail(e, HS_E_FORMAT, "%s: central directory record #%zu has an invalid name",
                       z->path, index + 1);
    *pos += len;
    return HS_OK;
}

/* Checks the local header against the CD record (as Android's verifier
 * does) and computes where the data and the whole record end. */
static hs_result parse_local_header(hs_zip *z, hs_zip_entry *ent, hs_error *e)
{
    int nl = (int)ent->name_len;
    if (!in_range(ent->lfh_offset, HS_ZIP_LFH_SIZE + (uint64_t)ent->name_len, z->entries_end))
        return hs_fail(e, HS_E_FORMAT,
                       "%s: entry %.*s: local header lies outside the entries section", z->path,
                       nl, ent->name);
    const uint8_t *p = z->map + ent->lfh_offset;
    if (hs_le32(p) != SIG_LFH)
        return hs_fail(e, HS_E_FORMAT, "%s: entry %.*s: no local file header at offset %ju",
                       z->path, nl, ent->name, (uintmax_t)ent->lfh_offset);
    uint16_t flags = hs_le16(p + 6);
    if ((flags & HS_ZIP_FLAG_DATA_DESCRIPTOR) != (ent->flags & HS_ZIP_FLAG_DATA_DESCRIPTOR))
        return hs_fail(e, HS_E_FORMAT,
                       "%s: entry %.*s: local header and central directory disagree on the data "
                       "descriptor",
                       z->path, nl, ent->name);
    if (hs_le16(p + 26) != ent->name_len ||
        memcmp(p + HS_ZIP_LFH_SIZE, ent->name, ent->name_len) != 0)
        return hs_fail(e, HS_E_FORMAT,
                       "%s: entry %.*s: local header and central directory name differ", z->path,
                       nl, ent->name);
    if (!(flags & HS_ZIP_FLAG_DATA_DESCRIPTOR) &&
        (hs_le32(p + 14) != ent->crc32 || hs_le32(p + 18) != ent->compressed_size ||
         hs_le32(p + 22) != ent->uncompressed_size))
        return hs_fail(e, HS_E_FORMAT,
                       "%s: entry %.*s: local header and central directory disagree on CRC or "
                       "sizes",
                       z->path, nl, ent->name);
    ent->lfh_extra_len = hs_le16(p + 28);
    ent->data_offset = ent->lfh_offset + HS_ZIP_LFH_SIZE + ent->name_len + ent->lfh_extra_len;
    uint64_t data_len =
        ent->method == HS_ZIP_METHOD_STORED ? ent->uncompressed_size : ent->compressed_size;
    if (!in_range(ent->data_offset, data_len, z->entries_end))
        return hs_fail(e, HS_E_FORMAT,
                       "%s: entry %.*s: data overlaps the central directory or runs past the file",
                       z->path, nl, ent->name);
    ent->record_end = ent->data_offset + data_len;
    if (flags & HS_ZIP_FLAG_DATA_DESCRIPTOR) {
        /* 12 bytes, or 16 with the optional signature (Android's guess). */
        uint64_t dd_len = 12;
        if (in_range(ent->record_end, 4, z->entries_end) &&
            hs_le32(z->map + ent->record_end) == SIG_DATA_DESCRIPTOR)
            dd_len = 16;
        if (!in_range(ent->record_end, dd_len, z->entries_end))
            return hs_fail(e, HS_E_FORMAT,
                           "%s: entry %.*s: data descriptor overlaps the central directory",
                           z->path, nl, ent->name);
        ent->record_end += dd_len;
    }
    return HS_OK;
}

static int cmp_lfh(const void *a, const void *b, void *ctx)
{
    const hs_zip *z = ctx;
    uint64_t x = z->entries[*(const size_t *)a].lfh_offset;
    uint64_t y = z->entries[*(const size_t *)b].lfh_offset;
    return x < y ? -1 : x > y;
}

size_t *hs_zip_file_order(const hs_zip *z)
{
    size_t *order = malloc((z->entry_count ? z->entry_count : 1) * sizeof *order);
    if (order == NULL)
        return NULL;
    for (size_t i = 0; i < z->entry_count; i++)
        order[i] = i;
    qsort_r(order, z->entry_count, sizeof *order, cmp_lfh, (void *)z);
    return order;
}

static int cmp_by_name(const void *a, const void *b)
{
    const hs_zip_entry *x = *(const hs_zip_entry *const *)a;
    const hs_zip_entry *y = *(const hs_zip_entry *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c != 0 ? c : (int)x->name_len - (int)y->name_len;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const hs_zip_entry *x = *(const hs_zip_entry *const *)a;
    const hs_zip_entry *y = *(const hs_zip_entry *const *)b;
    return x->lfh_offset < y->lfh_offset ? -1 : x->lfh_offset > y->lfh_offset;
}

static hs_result check_names_and_overlaps(hs_zip *z, hs_error *e)
{
    if (z->entry_count < 2)
        return HS_OK;
    hs_zip_entry **order = malloc(z->entry_count * sizeof(hs_zip_entry *));
    if (order == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", z->path);
    for (size_t i = 0; i < z->entry_count; i++)
        order[i] = &z->entries[i];
    hs_result r = HS_OK;
    qsort(order, z->entry_count, sizeof(hs_zip_entry *), cmp_by_name);
    for (size_t i = 1; i < z->entry_count && r == HS_OK; i++)
        if (cmp_by_name(&order[i - 1], &order[i]) == 0)
            r = hs_fail(e, HS_E_FORMAT, "%s: duplicate entry name %.*s", z->path,
                        (int)order[i]->name_len, order[i]->name);
    qsort(order, z->entry_count, sizeof(hs_zip_entry *), cmp_by_offset);
    for (size_t i = 1; i < z->entry_count && r == HS_OK; i++)
        if (order[i - 1]->record_end > order[i]->lfh_offset)
            r = hs_fail(e, HS_E_FORMAT, "%s: entries %.*s and %.*s overlap", z->path,
                        (int)order[i - 1]->name_len, order[i - 1]->name,
                        (int)order[i]->name_len, order[i]->name);
    free(order);
    return r;
}

static hs_result map_file(hs_zip *z, hs_error *e)
{
    z->fd = open(z->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO fails below, never blocks */
    if (z->fd < 0)
        return hs_fail(e, errno == ENOENT ? HS_E_NOTFOUND : HS_E_IO, "%s: cannot open: %s",
                       z->path, strerror(errno));
    struct stat st;
    if (fstat(z->fd, &st) != 0)
        return hs_fail(e, HS_E_IO, "%s: cannot stat: %s", z->path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return hs_fail(e, HS_E_IO, "%s: not a regular file", z->path);
    z->size = (uint64_t)st.st_size;
    if (z->size == 0)
        return hs_fail(e, HS_E_FORMAT, "%s: not a ZIP archive (empty file)", z->path);
    void *m = mmap(NULL, (size_t)z->size, PROT_READ, MAP_PRIVATE, z->fd, 0);
    if (m == MAP_FAILED)
        return hs_fail(e, HS_E_IO, "%s: cannot map: %s", z->path, strerror(errno));
    z->map = m;
    return HS_OK;
}

hs_result hs_zip_open_flags(hs_zip *z, const char *path, unsigned flags, hs_error *e)
{
    memset(z, 0, sizeof *z);
    z->fd = -1;
    z->allow_nul_names = (flags & HS_ZIP_ALLOW_NUL_NAMES) != 0;
    z->resign = (flags & HS_ZIP_RESIGN) != 0;
    z->path = strdup(path);
    if (z->path == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", path);
    uint32_t count = 0;
    hs_result r = map_file(z, e);
    if (r == HS_OK)
        r = find_eocd(z, e);
    if (r == HS_OK)
        r = parse_eocd(z, &count, e);
    if (r == HS_OK)
        r = find_signing_block(z, e);
    if (r == HS_OK && count > 0) {
        z->entries = calloc(count, sizeof *z->entries);
        if (z->entries == NULL)
            r = hs_fail(e, HS_E_NOMEM, "%s: out of memory for %u entries", path, count);
    }
    uint64_t pos = z->cd_offset;
    for (uint32_t i = 0; r == HS_OK && i < count; i++) {
        r = parse_cd_record(z, &pos, i, e);
        z->entry_count = i + 1;
    }
    if (r == HS_OK && pos != z->cd_offset + z->cd_size)
        r = hs_fail(e, HS_E_FORMAT, "%s: %ju unused bytes at the end of the central directory",
                    path, (uintmax_t)(z->cd_offset + z->cd_size - pos));
    /* Reading the local headers maps most pages of an APK with many small
     * entries (the kernel maps neighbouring pages on each fault): release
     * them as we go. The CD (entry names point into it) stays mapped. */
    hs_zip_span read = {0};
    for (size_t i = 0; r == HS_OK && i < z->entry_count; i++) {
        r = parse_local_header(z, &z->entries[i], e);
        hs_zip_span_note(z, &read, z->entries[i].lfh_offset, z->entries[i].data_offset);
    }
    if (r == HS_OK)
        hs_zip_span_flush(z, &read);
    if (r == HS_OK)
        r = check_names_and_overlaps(z, e);
    if (r != HS_OK)
        hs_zip_close(z);
    return r;
}

hs_result hs_zip_open(hs_zip *z, const char *path, hs_error *e)
{
    return hs_zip_open_flags(z, path, 0, e);
}

hs_result hs_zip_open_resign(hs_zip *z, const char *path, hs_error *e)
{
    return hs_zip_open_flags(z, path, HS_ZIP_RESIGN, e);
}

void hs_zip_release(const hs_zip *z, uint64_t offset, uint64_t len)
{
    if (z->map == NULL || offset >= z->size || len == 0)
        return;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t end = len > z->size - offset ? z->size : offset + len;
    /* Rounded outwards: the map is read-only and never written, so dropping
     * a page another pass still needs only costs a page fault. The mapping
     * itself extends to the end of the last page. */
    uint64_t start = offset - offset % page;
    end += (page - end % page) % page;
    (void)madvise((void *)(z->map + start), (size_t)(end - start), MADV_DONTNEED);
}

void hs_zip_span_note(const hs_zip *z, hs_zip_span *s, uint64_t lo, uint64_t hi)
{
    if (s->hi == s->lo) {
        s->lo = lo;
        s->hi = hi;
    } else {
        s->lo = lo < s->lo ? lo : s->lo;
        s->hi = hi > s->hi ? hi : s->hi;
    }
    if (s->hi - s->lo >= HS_ZIP_RELEASE_STEP)
        hs_zip_span_flush(z, s);
}

void hs_zip_span_flush(const hs_zip *z, hs_zip_span *s)
{
    hs_zip_release(z, s->lo, s->hi - s->lo);
    s->lo = s->hi = 0;
}

void hs_zip_close(hs_zip *z)
{
    if (z->map != NULL)
        munmap((void *)z->map, (size_t)z->size);
    if (z->fd >= 0)
        close(z->fd);
    free(z->entries);
    free(z->path);
    memset(z, 0, sizeof *z);
    z->fd = -1;
}

bool hs_zip_entry_name_is(const hs_zip_entry *ent, const char *name)
{
    size_t n = strlen(name);
    return n == ent->name_len && memcmp(ent->name, name, n) == 0;
}

long hs_zip_find(const hs_zip *z, const char *name)
{
    for (size_t i = 0; i < z->entry_count; i++)
        if (hs_zip_entry_name_is(&z->entries[i], name))
            return (long)i;
    return -1;
}
