/* The key store: a directory of key files, NAME.key. Plain files, safe to
 * back up and copy: each holds its private key only wrapped. */
#ifndef HSMSIGN_KEYSTORE_KEYSTORE_H
#define HSMSIGN_KEYSTORE_KEYSTORE_H

#include <stdbool.h>

#include "keystore/keyfile.h"

#define HS_KEYSTORE_DEFAULT_DIR "./keys"

hs_result hs_keystore_path(const char *dir, const char *name, char *out, size_t cap,
                           hs_error *e) HS_MUST_CHECK;
bool hs_keystore_exists(const char *dir, const char *name);
/* Loads NAME.key; an unknown name is HS_E_NOTFOUND with a hint. */
hs_result hs_keystore_load(const char *dir, const char *name, hs_keyfile *kf,
                           hs_error *e) HS_MUST_CHECK;
/* Writes NAME.key atomically; never replaces an existing key file. */
hs_result hs_keystore_save(const char *dir, const hs_keyfile *kf, hs_error *e) HS_MUST_CHECK;
/* Sorted key names (malloc'd array of malloc'd strings). */
hs_result hs_keystore_list(const char *dir, char ***names, size_t *n, hs_error *e) HS_MUST_CHECK;
void hs_keystore_list_free(char **names, size_t n);

#endif
