/* Internal to the yubihsm2 personality (shim_yubihsm.c: configuration,
 * identity, mechanisms and login; shim_yh_store.c: objects and the
 * storage limits; shim_yh_wrap.c: the wrap blob). */
#ifndef HSMSIGN_SHIM_YUBIHSM_H
#define HSMSIGN_SHIM_YUBIHSM_H

#include <pthread.h>
#include <stdbool.h>

#include "p11shim.h"

/* YubiHSM object types (yubihsm.h yh_object_type). */
enum yh_type { YH_NONE = 0, YH_OPAQUE = 1, YH_ASYMMETRIC = 3, YH_WRAP = 4, YH_HMAC = 5,
               YH_SYMMETRIC = 8 };

#define MAX_TEMPLATE 48

/* The counts file's part (struct shim_yh_counts), under yh_lock. */
extern pthread_mutex_t yh_lock;
extern struct shim_yh_counts yh_counts;

static inline CK_FUNCTION_LIST *R(void)
{
    return shim_real();
}

/* What a SoftHSM object is on the device. */
struct obj_info {
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE kt;
    enum yh_type type;   /* YH_NONE: no device object of its own (public keys) */
    unsigned long pages;
    bool wrap_key;
    CK_ULONG aes_len;
};

struct storage {
    unsigned long objects, pages;
};

CK_RV yh_get_one(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, void *value,
                 CK_ULONG *len);
bool yh_get_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type);
CK_RV yh_describe(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, struct obj_info *out);

/* A session of the personality's own, on the slot of the application's
 * session (closed by the caller). */
CK_RV yh_own_session(CK_SESSION_HANDLE app, CK_SESSION_HANDLE *own, bool *logged_in);

/* The storage: measured (every object the session sees), noted into the
 * counts; the per-handle cache dropped when handles lose their meaning. */
CK_RV yh_measure(CK_SESSION_HANDLE own, struct storage *st);
void yh_note_storage(const struct storage *st);
void yh_cache_clear(void);

/* Whether a new object of `type` and `pages` fits the device and its ID is
 * free (the device's answers when not); noted once created. */
CK_RV yh_admit(CK_SESSION_HANDLE app, enum yh_type type, const void *id, CK_ULONG id_len,
               unsigned long pages);
void yh_note_created(unsigned long pages, bool was_unwrapped, CK_OBJECT_HANDLE handle);

#endif
