/* Reading external test vectors at run time (tests/vectors, located by the
 * HSMSIGN_VECTORS environment variable meson sets), so no secret from a
 * vector is copied into test source. */
#ifndef HSMSIGN_TEST_VECTORS_H
#define HSMSIGN_TEST_VECTORS_H

/* The value of a "key: value" header line of a vector file (relative to
 * tests/vectors), malloc'd, or NULL if the file or line is missing. */
char *test_vector_header(const char *relpath, const char *key);

#endif
