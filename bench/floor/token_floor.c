/* The token floor (bench/README.md, "bench/fixed"): the least a signing
 * command must do with hsmsign's key store, and nothing more. Loads the
 * PKCS#11 module, logs in, finds the wrap key by its label, unwraps the
 * key file's blob with the same template hsmsign uses, signs the SHA-256
 * of FILE once (RSA PKCS#1 v1.5 or ECDSA, as `sign raw` does) and exits.
 * No audit log, no key store checks, no output file: what `hsmsign sign
 * raw` costs beyond this is hsmsign's own fixed cost.
 *
 *   token_floor MODULE KEYFILE FILE     (PIN in HSMSIGN_PIN)
 *
 * A bench target, never installed. Exit 0 when it signed. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "keystore/custody.h"
#include "keystore/keyfile.h"

static CK_FUNCTION_LIST *fn;

static int die(const char *what, CK_RV rv)
{
    fprintf(stderr, "token_floor: %s failed (CKR 0x%lx)\n", what, (unsigned long)rv);
    return 1;
}

static CK_RV find_one(CK_SESSION_HANDLE s, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *h)
{
    CK_ULONG count = 0;
    CK_RV rv = fn->C_FindObjectsInit(s, t, n);
    if (rv == CKR_OK)
        rv = fn->C_FindObjects(s, h, 1, &count);
    fn->C_FindObjectsFinal(s);
    return rv == CKR_OK && count != 1 ? CKR_OBJECT_HANDLE_INVALID : rv;
}

/* What hsmsign signs for a tiny file: SHA-256 on the host, then the
 * DigestInfo (RSA) or the bare digest (ECDSA) on the token. */
static size_t to_be_signed(const char *path, bool rsa, uint8_t *out)
{
    static const uint8_t info[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                     0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    uint8_t data[4096];
    FILE *f = fopen(path, "rb");
    size_t len = f ? fread(data, 1, sizeof data, f) : 0;
    if (f)
        fclose(f);
    size_t at = rsa ? sizeof info : 0;
    memcpy(out, info, at);
    return EVP_Digest(data, len, out + at, NULL, EVP_sha256(), NULL) ? at + 32 : 0;
}

int main(int argc, char **argv)
{
    const char *pin = getenv("HSMSIGN_PIN");
    if (argc != 4 || pin == NULL) {
        fprintf(stderr, "usage: token_floor MODULE KEYFILE FILE (PIN in HSMSIGN_PIN)\n");
        return 2;
    }
    hs_keyfile kf;
    hs_error e = {0};
    if (hs_keyfile_load(argv[2], &kf, &e) != HS_OK) {
        fprintf(stderr, "token_floor: %s\n", e.msg);
        return 2;
    }
    void *mod = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CK_C_GetFunctionList get = mod ? (CK_C_GetFunctionList)dlsym(mod, "C_GetFunctionList") : NULL;
    if (get == NULL || get(&fn) != CKR_OK)
        return die("loading the module", CKR_GENERAL_ERROR);
    CK_C_INITIALIZE_ARGS init = {.flags = CKF_OS_LOCKING_OK};
    CK_RV rv = fn->C_Initialize(&init);
    if (rv != CKR_OK)
        return die("C_Initialize", rv);
    CK_SLOT_ID slots[16], slot = 0;
    CK_ULONG nslots = 16;
    CK_TOKEN_INFO ti;
    rv = fn->C_GetSlotList(CK_TRUE, slots, &nslots);
    bool found = false;
    /* The first initialized token, as hsmsign picks without HSMSIGN_TOKEN. */
    for (CK_ULONG i = 0; rv == CKR_OK && i < nslots && !found; i++) {
        found = fn->C_GetTokenInfo(slots[i], &ti) == CKR_OK && (ti.flags & CKF_TOKEN_INITIALIZED);
        slot = slots[i];
    }
    if (!found)
        return die("finding an initialized token", rv);
    CK_SESSION_HANDLE s;
    rv = fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv == CKR_OK)
        rv = fn->C_Login(s, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
    if (rv != CKR_OK)
        return die("C_OpenSession/C_Login", rv);
    CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    CK_ATTRIBUTE wt[] = {{CKA_CLASS, &secret, sizeof secret},
                         {CKA_LABEL, kf.wrap_label, strlen(kf.wrap_label)}};
    CK_OBJECT_HANDLE wrap, key;
    rv = find_one(s, wt, 2, &wrap);
    if (rv != CKR_OK)
        return die("finding the wrap key", rv);
    bool rsa = hs_keyalg_is_rsa(kf.alg);
    CK_KEY_TYPE kt = rsa ? CKK_RSA : CKK_EC;
    CK_ATTRIBUTE t[2 + HS_CUSTODY_UNWRAP_ATTRS] = {{CKA_KEY_TYPE, &kt, sizeof kt},
                                                   {CKA_LABEL, kf.name, strlen(kf.name)}};
    CK_MECHANISM unwrap = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    rv = fn->C_UnwrapKey(s, &unwrap, wrap, kf.wrapped, kf.wrapped_len, t,
                         2 + hs_custody_unwrap_attrs(false, &t[2]), &key);
    if (rv != CKR_OK)
        return die("C_UnwrapKey", rv);
    uint8_t tbs[64], sig[1024];
    CK_ULONG tbs_len = to_be_signed(argv[3], rsa, tbs), sig_len = sizeof sig;
    CK_MECHANISM m = {rsa ? CKM_RSA_PKCS : CKM_ECDSA, NULL, 0};
    rv = tbs_len ? fn->C_SignInit(s, &m, key) : CKR_DATA_INVALID;
    if (rv == CKR_OK)
        rv = fn->C_Sign(s, tbs, tbs_len, sig, &sig_len);
    if (rv != CKR_OK)
        return die("C_Sign", rv);
    fn->C_DestroyObject(s, key);
    fn->C_Logout(s);
    fn->C_CloseSession(s);
    fn->C_Finalize(NULL);
    hs_keyfile_free(&kf);
    return 0;
}
