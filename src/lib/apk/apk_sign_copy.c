/* The entry copier of the APK signer: which entries are kept, where they
 * go and how stored entries are re-aligned. */
#include "apk/apk_sign_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ALIGNMENT_EXTRA_ID 0xd935u
#define ALIGNMENT_EXTRA_MIN_SIZE 6u /* id, size, u16 multiple */
#define DEFAULT_ALIGNMENT 4u
#define LIBRARY_ALIGNMENT 4096u /* apksigner 31: stored .so files, page aligned */
#define PIN_LIST_ENTRY "pinlist.meta"
#define SOURCE_STAMP_ENTRY "stamp-cert-sha256"

static bool ends_with_ci(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && strncasecmp(s + len - n, suffix, n) == 0;
}

bool hs_apk_entry_is_signed_content(const char *name, size_t len)
{
    static const char meta[] = "META-INF/";
    const size_t meta_len = sizeof meta - 1;
    if (len > 0 && name[len - 1] == '/')
        return false; /* directories are not listed in MANIFEST.MF */
    if (len < meta_len || memcmp(name, meta, meta_len) != 0)
        return true;
    const char *file = name + meta_len;
    size_t file_len = len - meta_len;
    if (memchr(file, '/', file_len) != NULL)
        return true; /* files in META-INF subdirectories are content */
    if ((file_len == 11 && strncasecmp(file, "MANIFEST.MF", 11) == 0) ||
        ends_with_ci(file, file_len, ".SF") || ends_with_ci(file, file_len, ".RSA") ||
        ends_with_ci(file, file_len, ".DSA") || ends_with_ci(file, file_len, ".EC") ||
        (file_len >= 4 && strncasecmp(file, "SIG-", 4) == 0))
        return false;
    return true;
}

/* The pin list and source stamp entries apksig regenerates: left out of
 * the central directory, but (apksigner 31) not out of the file. */
static bool is_regenerated(const hs_zip_entry *ent)
{
    return hs_zip_entry_name_is(ent, PIN_LIST_ENTRY) || hs_zip_entry_name_is(ent, SOURCE_STAMP_ENTRY);
}

/* apksig's output policy: signature files and directories are dropped. */
static bool keep_entry(const hs_zip_entry *ent)
{
    return hs_apk_entry_is_signed_content(ent->name, ent->name_len);
}

/* The data alignment an entry asks for: none when compressed, the value of
 * an existing 0xd935 extra field, else 4096 for .so files and 4. */
static uint32_t alignment_of(const hs_zip *z, const hs_zip_entry *ent)
{
    if (ent->method != HS_ZIP_METHOD_STORED)
        return 1;
    const uint8_t *x = z->map + ent->lfh_offset + HS_ZIP_LFH_SIZE + ent->name_len;
    size_t left = ent->lfh_extra_len;
    while (left >= 4) {
        uint16_t id = hs_le16(x), size = hs_le16(x + 2);
        if (size > left - 4)
            break;
        if (id == ALIGNMENT_EXTRA_ID) {
            if (size >= 2)
                return hs_le16(x + 4);
            break; /* malformed: fall back to the name-based default, as apksig */
        }
        x += 4 + size;
        left -= 4 + (size_t)size;
    }
    bool shared_library = ent->name_len >= 3 && memcmp(ent->name + ent->name_len - 3, ".so", 3) == 0;
    return shared_library ? LIBRARY_ALIGNMENT : DEFAULT_ALIGNMENT;
}

/* Rewrites the local extra field: other fields kept, old alignment fields
 * (0xd935, and zero-id padding) dropped, a new 0xd935 field appended whose
 * padding puts the data at a multiple of `multiple`. */
static hs_result write_realigned_header(const hs_zip *z, const hs_zip_entry *ent,
                                        uint32_t multiple, hs_apk_out *o, hs_error *e)
{
    const uint8_t *lfh = z->map + ent->lfh_offset;
    const uint8_t *x = lfh + HS_ZIP_LFH_SIZE + ent->name_len;
    size_t left = ent->lfh_extra_len;
    uint8_t *extra = malloc(left + ALIGNMENT_EXTRA_MIN_SIZE + multiple);
    if (extra == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", z->path);
    size_t n = 0;
    while (left >= 4) {
        uint16_t id = hs_le16(x), size = hs_le16(x + 2);
        if (size > left - 4)
            break;
        if (!(id == 0 && size == 0) && id != ALIGNMENT_EXTRA_ID) {
            memcpy(extra + n, x, 4 + (size_t)size);
            n += 4 + (size_t)size;
        }
        x += 4 + size;
        left -= 4 + (size_t)size;
    }
    uint64_t data_min = o->pos + HS_ZIP_LFH_SIZE + ent->name_len + n + ALIGNMENT_EXTRA_MIN_SIZE;
    uint32_t pad = (uint32_t)((multiple - data_min % multiple) % multiple);
    hs_put_le16(extra + n, ALIGNMENT_EXTRA_ID);
    hs_put_le16(extra + n + 2, (uint16_t)(2 + pad));
    hs_put_le16(extra + n + 4, (uint16_t)multiple);
    memset(extra + n + 6, 0, pad);
    n += ALIGNMENT_EXTRA_MIN_SIZE + pad;
    hs_result r = HS_OK;
    if (n > 0xffff)
        r = hs_fail(e, HS_E_FORMAT, "%s: entry %.*s: extra field too long to align", z->path,
                    (int)ent->name_len, ent->name);
    uint8_t header[HS_ZIP_LFH_SIZE];
    memcpy(header, lfh, HS_ZIP_LFH_SIZE);
    hs_put_le16(header + 28, (uint16_t)n);
    if (r == HS_OK)
        r = hs_apk_out_write(o, header, HS_ZIP_LFH_SIZE, e);
    if (r == HS_OK)
        r = hs_apk_out_write(o, ent->name, ent->name_len, e);
    if (r == HS_OK)
        r = hs_apk_out_write(o, extra, n, e);
    free(extra);
    if (r == HS_OK)
        r = hs_apk_out_copy_input(o, z, ent->data_offset, ent->record_end - ent->data_offset, e);
    return r;
}

static hs_result copy_record(const hs_zip *z, const hs_zip_entry *ent, bool preserved,
                             hs_apk_out *o, hs_error *e)
{
    uint64_t in_off = ent->lfh_offset, out_off = o->pos;
    uint32_t multiple = alignment_of(z, ent);
    bool verbatim = (in_off == out_off && preserved) || multiple <= 1 ||
                    (preserved && in_off % multiple == out_off % multiple) ||
                    (preserved && ent->data_offset % multiple != 0);
    if (verbatim)
        return hs_apk_out_copy_input(o, z, in_off, ent->record_end - in_off, e);
    return write_realigned_header(z, ent, multiple, o, e);
}

static void note_newest(hs_apk_copy_result *res, const hs_zip_entry *ent, bool *any)
{
    if (!*any || ent->mod_date > res->newest_date ||
        (ent->mod_date == res->newest_date && ent->mod_time > res->newest_time)) {
        res->newest_date = ent->mod_date;
        res->newest_time = ent->mod_time;
    }
    *any = true;
}

hs_result hs_apk_copy_entries(const hs_zip *z, bool alignment_preserved, hs_apk_out *o,
                              hs_apk_copy_result *res, hs_error *e)
{
    size_t count = z->entry_count;
    hs_apk_pins *pins = NULL;
    hs_result r = hs_apk_pins_load(z, &pins, e);
    if (r != HS_OK)
        return r;
    res->pins = pins != NULL;
    res->new_lfh_offset = malloc((count ? count : 1) * sizeof *res->new_lfh_offset);
    size_t *order = hs_zip_file_order(z);
    if (res->new_lfh_offset == NULL || order == NULL) {
        free(order);
        hs_apk_pins_free(pins);
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", z->path);
    }
    for (size_t i = 0; i < count; i++)
        res->new_lfh_offset[i] = HS_APK_DROPPED;
    /* No kept entry: apksig dates new entries 2009-01-01 00:00 (DOS). */
    res->newest_date = 0x3a21;
    res->newest_time = 0;
    bool any = false;
    uint64_t in_pos = 0;
    hs_zip_span read = {0};
    for (size_t k = 0; k < count && r == HS_OK; k++) {
        const hs_zip_entry *ent = &z->entries[order[k]];
        /* apksig skips these before its gap logic: their local records
         * stay, copied verbatim with the bytes before the next entry. */
        if (is_regenerated(ent))
            continue;
        if (ent->lfh_offset > in_pos)
            r = hs_apk_out_copy_input(o, z, in_pos, ent->lfh_offset - in_pos, e);
        hs_zip_span_note(z, &read, in_pos, ent->record_end);
        in_pos = ent->record_end;
        if (r != HS_OK || !keep_entry(ent))
            continue;
        note_newest(res, ent, &any);
        uint64_t lfh = o->pos;
        res->new_lfh_offset[order[k]] = lfh;
        r = copy_record(z, ent, alignment_preserved, o, e);
        if (r == HS_OK && pins != NULL) /* data and descriptor end the record, as in the input */
            hs_apk_pins_entry(pins, ent, lfh, o->pos - (ent->record_end - ent->data_offset),
                              o->pos, &res->pin_ranges);
    }
    if (r == HS_OK && in_pos < z->entries_end)
        r = hs_apk_out_copy_input(o, z, in_pos, z->entries_end - in_pos, e);
    hs_zip_span_note(z, &read, in_pos, z->entries_end);
    hs_zip_span_flush(z, &read);
    free(order);
    hs_apk_pins_free(pins);
    return r == HS_OK ? hs_apk_buf_check(&res->pin_ranges, z->path, e) : r;
}
