/* JAR manifest text as java.util.jar / apksig write it: "Name: value"
 * lines in UTF-8, CRLF, at most 70 bytes, continued with CRLF + space. */
#ifndef HSMSIGN_ANDROID_JAR_MANIFEST_H
#define HSMSIGN_ANDROID_JAR_MANIFEST_H

#include <stddef.h>

#include "apk/apk_buf.h"
#include "util/result.h"

typedef struct hs_jar_attr {
    char *name;
    char *value;      /* NUL-terminated; value_len counts NULs inside too */
    size_t value_len;
} hs_jar_attr;

typedef struct hs_jar_attrs {
    hs_jar_attr *items;
    size_t count;
} hs_jar_attrs;

/* Adds or replaces (names compare case-insensitively, the first spelling is
 * kept, as java.util.jar.Attributes does). */
hs_result hs_jar_attrs_put(hs_jar_attrs *a, const char *name, size_t name_len, const char *value,
                           size_t value_len, hs_error *e) HS_MUST_CHECK;
const char *hs_jar_attrs_get(const hs_jar_attrs *a, const char *name);
/* The same with the value's length (a Name may hold a NUL, as in a ZIP name). */
const char *hs_jar_attrs_get_n(const hs_jar_attrs *a, const char *name, size_t *len);
void hs_jar_attrs_free(hs_jar_attrs *a);

/* Parses the main section of an existing manifest (up to the first blank
 * line). what names the file in errors. */
hs_result hs_jar_manifest_parse_main(const char *text, size_t len, const char *what,
                                     hs_jar_attrs *out, hs_error *e) HS_MUST_CHECK;

/* Calls fn for each individual section (after the main one) with its
 * attributes; stops at the first error fn returns. */
typedef hs_result (*hs_jar_section_fn)(void *ctx, const hs_jar_attrs *section, hs_error *e);
hs_result hs_jar_manifest_each_section(const char *text, size_t len, const char *what,
                                       hs_jar_section_fn fn, void *ctx, hs_error *e) HS_MUST_CHECK;

/* Every section (the main one first) with its byte range in text: from
 * its first line to the end of the blank line closing it, what JAR
 * signature files hash. Sections without attributes are left out, except
 * the main one. Free with hs_jar_sections_free. */
typedef struct hs_jar_section {
    hs_jar_attrs attrs;
    size_t start, len;
} hs_jar_section;
hs_result hs_jar_manifest_sections(const char *text, size_t len, const char *what,
                                   hs_jar_section **out, size_t *count, hs_error *e) HS_MUST_CHECK;
void hs_jar_sections_free(hs_jar_section *s, size_t count);

/* "name: value" wrapped at 70 bytes, CRLF. */
void hs_jar_write_attr(hs_apk_buf *b, const char *name, const char *value);
/* A main section: first_name's attribute first, then the others sorted by
 * name, then a blank line. */
void hs_jar_write_main(hs_apk_buf *b, const hs_jar_attrs *a, const char *first_name);

#endif
