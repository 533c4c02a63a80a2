/* The yubihsm profile's keys (HS_KEYS_WRAPPED_PERSISTENT): unwrapped into a
 * persistent object on the device, since a YubiHSM 2 has no session
 * objects; deleted on every path, or kept resident (least recently used
 * evicted) when the agent asks for it; objects a killed run left are swept
 * at start-up and recorded. */
#include <stdio.h>
#include <string.h>

#include "keystore/yubihsm.h"
#include "signer/signer_internal.h"

/* A YubiHSM object a killed run left (keystore/yubihsm.h), deleted:
 * recorded, so the log accounts for every unwrapped key's end. */
static hs_result record_sweep(void *ctx, uint16_t id, const char *label, hs_error *e)
{
    hs_signer *s = ctx;
    size_t k = sizeof HS_YH_LABEL_PREFIX - 1;
    char reason[96];
    snprintf(reason, sizeof reason, "left on the device by a run that did not finish (object "
                                    "0x%04x)", id);
    hs_audit_entry en = {.operation = "sweep", .key_name = strlen(label) > k ? label + k : label,
                         .reason = reason};
    return hs_audit_append(s->audit, &en, NULL, e);
}

hs_result hs_persistent_sweep(hs_signer *s, hs_error *e)
{
    size_t swept = 0;
    return hs_yh_sweep(s->p11, record_sweep, s, &swept, e);
}

/* yubihsm: the unwrapped key is a persistent object, deleted by its ID
 * (its handle may be stale after a dropped session), then its hold
 * released. */
static hs_result put_away(hs_signer *s, loaded_key *k, hs_error *e)
{
    hs_result r = HS_OK;
    /* By handle first; then, if that failed (a dropped session, a device
     * error), by ID: two tries, so one failed call leaves nothing. */
    CK_RV rv = CKR_GENERAL_ERROR;
    if (k->unwrapped && k->generation == s->p11->generation)
        rv = s->p11->fn->C_DestroyObject(hs_p11_key_session(s->p11), k->handle);
    if (k->hold.fd >= 0 && rv != CKR_OK)
        r = hs_yh_delete(s->p11, k->hold.id, k->name, e);
    if (r == HS_OK)
        hs_yh_hold_release(&k->hold);
    k->unwrapped = false;
    return r;
}

/* Keeps k resident and deletes the least recently used other keys while
 * more than resident_max are on the device. */
static hs_result evict(hs_signer *s, loaded_key *k)
{
    k->last_use = ++s->use_tick;
    for (;;) {
        size_t n = 0;
        loaded_key *oldest = NULL;
        for (size_t i = 0; i < s->n_keys; i++) {
            loaded_key *o = s->keys[i];
            if (o->adopted || o->hold.fd < 0)
                continue;
            n++;
            if (oldest == NULL || o->last_use < oldest->last_use)
                oldest = o;
        }
        if (n <= s->resident_max || oldest == NULL)
            return HS_OK;
        /* A failed delete keeps the signature: the key stays held and
         * is deleted at the end (hs_signer_free) or by the next sweep. */
        hs_error ignored;
        if (put_away(s, oldest, &ignored) != HS_OK)
            return HS_OK;
    }
}

void hs_signer_set_resident_keys(hs_signer *s, size_t n)
{
    s->resident_max = n;
}

void hs_persistent_drop(hs_signer *s, loaded_key *k)
{
    hs_error ignored;
    if (put_away(s, k, &ignored) != HS_OK)
        hs_yh_hold_release(&k->hold); /* the next run's sweep deletes what is left */
}

/* yubihsm: into a persistent object under the blob's ID (its hold taken
 * until put_away). `ours`: an object left by this process's own earlier
 * unwrap (a dropped session), not a leftover to record. */
hs_result hs_persistent_unwrap(hs_signer *s, loaded_key *k, hs_error *e)
{
    bool ours = k->hold.fd >= 0;
    hs_result r = hs_yh_unwrap(s->p11, &s->wrap, &k->kf, ours, record_sweep, s, &k->hold,
                               &k->handle, e);
    if (r != HS_OK)
        return r;
    k->unwrapped = true;
    k->generation = s->p11->generation;
    s->stats.unwraps++;
    r = hs_signer_record(s, "unwrap", k->name, k->fingerprint, hs_keyalg_name(k->alg), e);
    hs_error ignored;
    if (r != HS_OK && put_away(s, k, &ignored) != HS_OK)
        hs_yh_hold_release(&k->hold); /* the next run's sweep deletes it */
    return r;
}

hs_result hs_persistent_after_sign(hs_signer *s, loaded_key *k, hs_result r, hs_error *e)
{
    /* yubihsm: the unwrapped key leaves the device on every path, or,
     * with keys resident (the agent), stays until evicted or the end. */
    hs_error de = {0};
    pthread_mutex_lock(&s->lock);
    hs_result dr = r == HS_OK && s->resident_max > 0 ? evict(s, k)
                                                     : put_away(s, k, r == HS_OK ? e : &de);
    pthread_mutex_unlock(&s->lock);
    if (r == HS_OK)
        r = dr;
    return r;
}
