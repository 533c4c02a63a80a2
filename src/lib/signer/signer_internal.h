/* Internal to src/lib/signer: the signer's state, shared by signer.c and
 * persistent.c (the yubihsm profile's persistent-object keys). Not part of
 * the public API (signer.h). */
#ifndef HSMSIGN_SIGNER_INTERNAL_H
#define HSMSIGN_SIGNER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keystore/yubihsm.h"
#include "signer/signer.h"

typedef struct loaded_key {
    char name[HS_KEY_NAME_MAX + 1];
    hs_keyalg alg;
    hs_keyfile kf;  /* empty for adopted keys */
    EVP_PKEY *pub;  /* borrowed from kf, or owned when adopted */
    uint8_t fingerprint[32];
    bool adopted;
    bool unwrapped;  /* handle usable: unwrapped, or (resident) found and checked */
    CK_OBJECT_HANDLE handle;
    unsigned generation; /* p11 generation the handle belongs to */
    hs_yh_hold hold;     /* yubihsm: held while its object is on the device */
    unsigned long last_use; /* yubihsm resident keys: for least-recently-used eviction */
} loaded_key;

struct hs_signer {
    hs_p11 *p11;
    hs_profile profile;
    hs_wrapkey wrap; /* empty when the profile has no wrap key */
    char *keystore;
    hs_audit *audit;
    pthread_mutex_t lock;
    /* yubihsm: one unwrap-sign-delete at a time, so no thread signs with
     * an object another thread is deleting. */
    pthread_mutex_t persistent_lock;
    size_t resident_max;   /* yubihsm: unwrapped keys kept between signatures */
    unsigned long use_tick;
    loaded_key **keys;
    size_t n_keys, cap_keys;
    hs_signer_stats stats;
    CK_MECHANISM_TYPE checked[8]; /* mechanisms known to be supported */
    size_t n_checked;
    hs_signer_remote remote; /* remote.sign != NULL: no token here (p11, audit NULL) */
    char remote_token[64];
    hs_sigcache *cache;      /* owned; NULL: no signature cache */
    hs_signer_warn_fn warn;
    void *warn_ctx;
    /* Signatures whose entries were appended without fsync: stored in the
     * cache by hs_signer_sync once those entries are durable. */
    hs_sigcache_entry **pending;
    size_t n_pending, cap_pending;
};

/* persistent.c: keys of the HS_KEYS_WRAPPED_PERSISTENT storage (yubihsm),
 * unwrapped into a token object that is deleted on every path. */

/* Start-up: deletes and records the objects a killed run left. */
hs_result hs_persistent_sweep(hs_signer *s, hs_error *e) HS_MUST_CHECK;

/* Unwraps k into a persistent object under its blob's ID (hold taken) and
 * records the unwrap; on failure nothing is left on the device. */
hs_result hs_persistent_unwrap(hs_signer *s, loaded_key *k, hs_error *e) HS_MUST_CHECK;

/* After a signature attempt with result r (called with s->lock not held):
 * deletes k's object, or with resident keys (the agent) keeps it and
 * evicts the least recently used others. Returns r, or the delete's
 * failure when r was HS_OK. */
hs_result hs_persistent_after_sign(hs_signer *s, loaded_key *k, hs_result r,
                                   hs_error *e) HS_MUST_CHECK;

/* Freeing a key: deletes its object, or leaves it to the next sweep. */
void hs_persistent_drop(hs_signer *s, loaded_key *k);

/* resident.c: keys of the HS_KEYS_RESIDENT storage. Makes k usable: finds
 * its objects by CKA_ID and checks them against its key file. */
hs_result hs_resident_find(hs_signer *s, loaded_key *k, hs_error *e) HS_MUST_CHECK;

#endif
