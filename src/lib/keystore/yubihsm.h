/* The yubihsm profile (docs/yubihsm.md): how signing keys live on a
 * YubiHSM 2 through Yubico's yubihsm_pkcs11.
 *
 * The device has one wrap mechanism, CKM_YUBICO_AES_CCM_WRAP, under a
 * wrap key of type CKK_YUBICO_AES256_CCM_WRAP; and no session objects: an
 * unwrapped key is a persistent object, which keeps the ID, label and
 * capabilities sealed in its blob (the unwrap template is ignored) and
 * fails when an object with that ID exists. So every key hsmsign makes
 * there is
 *   - labelled HS_YH_LABEL_PREFIX + its name (cut to 40 bytes, the
 *     device's label size) and given an object ID of HS_YH_ID_FIRST ..
 *     HS_YH_ID_LAST, free when chosen: any such private key on the device
 *     is one hsmsign made and must delete;
 *   - guarded, while it exists on the device, by an exclusive flock on a
 *     per-ID file ("hold"): a process that takes the hold of an ID it
 *     finds on the device knows no live hsmsign process has it unwrapped,
 *     so the object is a leftover of a killed run, and deletes it. The
 *     kernel drops a hold when its process dies, even by SIGKILL.
 * Unwrapped keys are deleted after use on every path; what a killed run
 * left is deleted by the next process's sweep (hs_yh_sweep) or by the
 * unwrap that finds it in its way, and each deletion is reported so the
 * caller records it in the audit log. */
#ifndef HSMSIGN_KEYSTORE_YUBIHSM_H
#define HSMSIGN_KEYSTORE_YUBIHSM_H

#include <stdint.h>

#include "keystore/keyalg.h"
#include "keystore/keyfile.h"
#include "keystore/wrapkey.h"
#include "p11/p11.h"

/* Yubico's vendor values (yubihsm-shell pkcs11/pkcs11y.h). */
#define HS_CKM_YUBICO_AES_CCM_WRAP 0xD9554204UL
#define HS_CKK_YUBICO_AES256_CCM_WRAP 0xD955422AUL

#define HS_YH_LABEL_PREFIX "hsmsign:"
#define HS_YH_LABEL_MAX 40
#define HS_YH_ID_FIRST 0x4800u
#define HS_YH_ID_LAST 0x4fffu
#define HS_YH_WRAPKEY_ID 0x4700u
/* Documented capacity (Concepts/Object.html, user guide "Storage"). */
#define HS_YH_MAX_OBJECTS 256ul
#define HS_YH_MAX_PAGES 1024ul

/* The exclusive flock that says "this process has object `id` on the
 * device". fd -1: none. */
typedef struct hs_yh_hold {
    int fd;
    uint16_t id;
} hs_yh_hold;

#define HS_YH_HOLD_NONE ((hs_yh_hold){-1, 0})

void hs_yh_hold_release(hs_yh_hold *h);

/* Reports one leftover deleted (its ID and label) so the caller records
 * it in the audit log; a failure stops the sweep. */
typedef hs_result (*hs_yh_swept_fn)(void *ctx, uint16_t id, const char *label, hs_error *e);

/* The wrap key: imported from the shares (key != NULL, C_CreateObject)
 * or generated in the device (NULL), as CKK_YUBICO_AES256_CCM_WRAP with
 * wrap and unwrap only. HS_E_EXISTS if the device has one with the label. */
hs_result hs_yh_wrapkey_make(hs_p11 *p, const char *label, const uint8_t *key, hs_wrapkey *out,
                             hs_error *e) HS_MUST_CHECK;
/* Finds the wrap key by label (NULL: the default). */
hs_result hs_yh_wrapkey_find(hs_p11 *p, const char *label, hs_wrapkey *out,
                             hs_error *e) HS_MUST_CHECK;

/* Pages a key of alg takes (RSA-2048 8, 3072 11, 4096 15; P-256 1). */
unsigned long hs_yh_pages_of(hs_keyalg alg);
/* Free objects and pages on the device (the authentication key logged in
 * with counted as one object of one page: PKCS#11 does not list it). */
hs_result hs_yh_free_storage(hs_p11 *p, unsigned long *objects, unsigned long *pages,
                             hs_error *e) HS_MUST_CHECK;
/* Refuses (HS_E_P11) when one more object of alg does not fit, naming the
 * key, what it needs, and the free objects and pages. */
hs_result hs_yh_check_room(hs_p11 *p, hs_keyalg alg, const char *name,
                           hs_error *e) HS_MUST_CHECK;

/* Generates a sign-only key pair, exportable under wrap, under a free ID
 * whose hold it takes (*hold; released by the caller after deleting).
 * Free: no object on the device has it and it is not one of the n_taken
 * IDs in `taken` (the key files already made: their keys are not on the
 * device between uses, but two key files with one ID could never be
 * resident together). */
hs_result hs_yh_generate(hs_p11 *p, hs_keyalg alg, const char *name, const uint16_t *taken,
                         size_t n_taken, hs_yh_hold *hold, CK_OBJECT_HANDLE *pub,
                         CK_OBJECT_HANDLE *priv, hs_error *e) HS_MUST_CHECK;

/* Unwraps kf's blob (its ID in kf->key_id): waits for the ID's hold,
 * deletes an object already there (a leftover, reported through fn unless
 * `ours`: this process's own object from before a dropped session), checks
 * the room, unwraps. On failure nothing stays on the device that this
 * call put there, and the hold is released. */
hs_result hs_yh_unwrap(hs_p11 *p, const hs_wrapkey *w, const hs_keyfile *kf, bool ours,
                       hs_yh_swept_fn fn, void *ctx, hs_yh_hold *hold, CK_OBJECT_HANDLE *out,
                       hs_error *e) HS_MUST_CHECK;

/* Deletes the hsmsign key with object ID id (none there: HS_OK). */
hs_result hs_yh_delete(hs_p11 *p, uint16_t id, const char *name, hs_error *e) HS_MUST_CHECK;

/* Deletes every hsmsign key on the device whose hold is free (a leftover
 * of a killed run), reporting each through fn; *n counts them. */
hs_result hs_yh_sweep(hs_p11 *p, hs_yh_swept_fn fn, void *ctx, size_t *n,
                      hs_error *e) HS_MUST_CHECK;

#endif
