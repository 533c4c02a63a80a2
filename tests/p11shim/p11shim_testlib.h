/* Shared by test_p11shim.c: the SoftHSM token fixture, the forked
 * scenario runner, PKCS#11 and OpenSSL helpers for scenario children, and
 * readers for the shim's counts JSON. Test code only. */
#ifndef HSMSIGN_P11SHIM_TESTLIB_H
#define HSMSIGN_P11SHIM_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#define USER_PIN "1234"
#define SO_PIN "12345678"

/* ---- child side: checks that end the child with exit status 1 -------- */

#define CHECK(cond) \
    do { \
        if (!(cond)) \
            child_fail(__FILE__, __LINE__, "check failed: %s", #cond); \
    } while (0)

#define CHECK_RV(expr, want) \
    do { \
        CK_RV got_ = (expr); \
        if (got_ != (CK_RV)(want)) \
            child_fail(__FILE__, __LINE__, "%s returned 0x%lx, expected 0x%lx", #expr, \
                       (unsigned long)got_, (unsigned long)(want)); \
    } while (0)

__attribute__((noreturn, format(printf, 3, 4))) void child_fail(const char *file, int line,
                                                                 const char *fmt, ...);

/* ---- scenarios -------------------------------------------------------- */

typedef void scenario_fn(CK_FUNCTION_LIST *p11, const void *arg);

/* Runs fn in a forked child whose environment is the shim's defaults plus
 * env (NULL-terminated "NAME=VALUE" strings), with the shim freshly loaded.
 * Returns the child's exit code (0: every check passed). */
int run_scenario(const char *const *env, scenario_fn *fn, const void *arg);

/* cmocka group setup/teardown: a SoftHSM token "t" (SO PIN SO_PIN, user
 * PIN USER_PIN) in a fresh temporary directory, SOFTHSM2_CONF set. */
int create_token(void **state);
/* The same with another user PIN (the yubihsm2 personality wants 8..64). */
int create_token_with_pin(const char *user_pin);
int remove_token(void **state);

/* ---- child side: PKCS#11 helpers (they CHECK their own calls) -------- */

struct keypair {
    CK_OBJECT_HANDLE pub, priv;
};

extern const CK_BYTE message[32];

CK_FUNCTION_LIST *load_shim(void);
CK_SLOT_ID token_slot(CK_FUNCTION_LIST *p11);
CK_SESSION_HANDLE open_session(CK_FUNCTION_LIST *p11, CK_SLOT_ID slot);
/* C_Initialize, a read-write session on the token, user login. */
CK_SESSION_HANDLE open_logged_in(CK_FUNCTION_LIST *p11);
/* A session (CKA_TOKEN false) RSA key pair. */
struct keypair generate_rsa(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s, CK_ULONG bits);
/* SHA256-RSA-PKCS over `message`; returns C_Sign's answer. */
CK_RV sign_message(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                   CK_BYTE *sig, CK_ULONG *sig_len);
/* SHA256-RSA-PKCS verification by the token; returns C_Verify's answer. */
CK_RV verify_message(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                     const CK_BYTE *msg, CK_ULONG msg_len, CK_BYTE *sig, CK_ULONG sig_len);
EVP_PKEY *public_key_from_token(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s,
                                CK_OBJECT_HANDLE pub);
/* OpenSSL's verdict on a SHA256-RSA-PKCS signature over `message`. */
bool openssl_verifies(EVP_PKEY *key, const CK_BYTE *sig, CK_ULONG sig_len);
CK_ULONG count_objects_labelled(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s, const char *label);
void sleep_ms(long ms);
double now_ms(void);

/* ---- parent side: the counts JSON (cmocka assertions) ----------------- */

/* <tmpdir>/counts-<name>.json, removed if it exists. */
void counts_path(char *out, size_t size, const char *name);
json_t *load_counts(const char *path);
long long count_of(json_t *root, const char *key);
long long calls_of(json_t *root, const char *fn);
bool finalized_flag(json_t *root);

#endif
