/* Strict readers for the JSON files hsmsign reads (ceremony configuration,
 * transcripts, key files): one document, no duplicate keys, no field the
 * format does not name. A file that says more than we understand is
 * refused rather than half-read. Messages name the file (`what`, e.g.
 * "key file PATH") and the field's place (`where`, e.g. "holders[0].",
 * "" at the top level). */
#ifndef HSMSIGN_UTIL_JSON_H
#define HSMSIGN_UTIL_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/result.h"

/* The number of names in a static array of field names. */
#define HS_JSON_COUNT(names) (sizeof(names) / sizeof((names)[0]))

/* Parses text as one JSON document, refusing duplicate keys; *root is the
 * caller's (json_decref). HS_E_FORMAT "WHAT: line N: why". */
hs_result hs_json_load_strict(const char *text, size_t len, const char *what, json_t **root,
                              hs_error *e) HS_MUST_CHECK;

/* Fills a zeroed object from the document's root; src names the input. */
typedef hs_result (*hs_json_reader)(json_t *root, void *obj, const char *src, hs_error *e);

/* The whole read of a JSON file into a new object: hs_json_load_strict
 * (errors named by what), calloc(size), read; on failure the object is
 * released (release, e.g. free) and *out stays NULL. */
hs_result hs_json_read_object(const char *text, size_t len, const char *what, const char *src,
                              size_t size, hs_json_reader read, void (*release)(void *),
                              void **out, hs_error *e) HS_MUST_CHECK;

/* obj has names[0..n_required) and no key outside names[0..n).
 * HS_E_FORMAT "WHAT: field 'WHEREkey' is missing" or
 * "WHAT: unknown field 'WHEREkey'". */
hs_result hs_json_check_fields(json_t *obj, const char *const *names, size_t n_required, size_t n,
                               const char *what, const char *where, hs_error *e) HS_MUST_CHECK;

/* obj[key], a string of 1 to cap-1 bytes without NUL, copied into dst.
 * Absent: HS_OK with dst untouched unless required. HS_E_FORMAT naming
 * the field otherwise. */
hs_result hs_json_get_string(json_t *obj, const char *key, bool required, char *dst, size_t cap,
                             const char *what, const char *where, hs_error *e) HS_MUST_CHECK;

#endif
