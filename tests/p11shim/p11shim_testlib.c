/* Helpers for test_p11shim.c; see p11shim_testlib.h. */
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include "p11shim_testlib.h"

static char tmpdir[256];

void child_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

CK_FUNCTION_LIST *load_shim(void)
{
    const char *path = getenv("HSMSIGN_P11SHIM");
    CHECK(path != NULL);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL)
        child_fail(__FILE__, __LINE__, "dlopen %s: %s", path, dlerror());
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    CHECK(get != NULL);
    CK_FUNCTION_LIST *p11 = NULL;
    CHECK_RV(get(&p11), CKR_OK);
    CHECK(p11 != NULL);
    CHECK(p11->version.major == 2 && p11->version.minor == 40);
    return p11;
}

static const char *const shim_vars[] = {
    "HSMSIGN_SHIM_FAIL_AT", "HSMSIGN_SHIM_FAIL_FUNC", "HSMSIGN_SHIM_FAIL_RV",
    "HSMSIGN_SHIM_FAIL_MODE", "HSMSIGN_SHIM_LATENCY_MS", "HSMSIGN_SHIM_LATENCY",
    "HSMSIGN_SHIM_MAX_SESSIONS", "HSMSIGN_SHIM_IDLE_TIMEOUT_MS", "HSMSIGN_SHIM_COUNTS",
    "HSMSIGN_SHIM_PERSONALITY", "HSMSIGN_SHIM_YUBIHSM_FIRMWARE", "HSMSIGN_SHIM_YUBIHSM_AUTH_KEYS",
    "YUBIHSM_PKCS11_CONF",
};


/* Runs fn in a child whose environment is the shim's defaults plus env
 * (NULL-terminated "NAME=VALUE" strings). Returns the child's exit code. */
int run_scenario(const char *const *env, scenario_fn *fn, const void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (size_t i = 0; i < sizeof shim_vars / sizeof shim_vars[0]; i++)
            unsetenv(shim_vars[i]);
        setenv("HSMSIGN_SHIM_MODULE", getenv("HSMSIGN_SOFTHSM_MODULE"), 1);
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        fn(load_shim(), arg);
        exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fprintf(stderr, "scenario killed by signal %d\n", WTERMSIG(status));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* ---- child side: PKCS#11 helpers ------------------------------------- */

CK_SLOT_ID token_slot(CK_FUNCTION_LIST *p11)
{
    CK_SLOT_ID slots[8];
    CK_ULONG n = 8;
    CHECK_RV(p11->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
    CHECK(n >= 1);
    return slots[0];
}

CK_SESSION_HANDLE open_session(CK_FUNCTION_LIST *p11, CK_SLOT_ID slot)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CHECK_RV(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s),
             CKR_OK);
    return s;
}

CK_SESSION_HANDLE open_logged_in(CK_FUNCTION_LIST *p11)
{
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    CK_SESSION_HANDLE s = open_session(p11, token_slot(p11));
    CHECK_RV(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)USER_PIN, strlen(USER_PIN)), CKR_OK);
    return s;
}

struct keypair generate_rsa(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s, CK_ULONG bits)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_BYTE exponent[] = {1, 0, 1};
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub_tmpl[] = {
        {CKA_TOKEN, &no, sizeof no},
        {CKA_VERIFY, &yes, sizeof yes},
        {CKA_MODULUS_BITS, &bits, sizeof bits},
        {CKA_PUBLIC_EXPONENT, exponent, sizeof exponent},
    };
    CK_ATTRIBUTE priv_tmpl[] = {
        {CKA_TOKEN, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},
    };
    struct keypair kp = {0, 0};
    CHECK_RV(p11->C_GenerateKeyPair(s, &mech, pub_tmpl, 4, priv_tmpl, 4, &kp.pub, &kp.priv),
             CKR_OK);
    return kp;
}

const CK_BYTE message[32] = "hsmsign p11shim forwarding test";

/* SHA256-RSA-PKCS over `message`; returns the token's answer. */
CK_RV sign_message(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                          CK_BYTE *sig, CK_ULONG *sig_len)
{
    CK_MECHANISM mech = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CHECK_RV(p11->C_SignInit(s, &mech, key), CKR_OK);
    return p11->C_Sign(s, (CK_BYTE_PTR)message, sizeof message, sig, sig_len);
}

CK_RV verify_message(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                            const CK_BYTE *msg, CK_ULONG msg_len, CK_BYTE *sig,
                            CK_ULONG sig_len)
{
    CK_MECHANISM mech = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CHECK_RV(p11->C_VerifyInit(s, &mech, key), CKR_OK);
    return p11->C_Verify(s, (CK_BYTE_PTR)msg, msg_len, sig, sig_len);
}

/* The public key as OpenSSL sees it, built from the token's attributes. */
EVP_PKEY *public_key_from_token(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s,
                                       CK_OBJECT_HANDLE pub)
{
    CK_BYTE n[512], e[16];
    CK_ATTRIBUTE attrs[] = {
        {CKA_MODULUS, n, sizeof n},
        {CKA_PUBLIC_EXPONENT, e, sizeof e},
    };
    CHECK_RV(p11->C_GetAttributeValue(s, pub, attrs, 2), CKR_OK);
    BIGNUM *bn_n = BN_bin2bn(n, (int)attrs[0].ulValueLen, NULL);
    BIGNUM *bn_e = BN_bin2bn(e, (int)attrs[1].ulValueLen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    CHECK(bn_n != NULL && bn_e != NULL && bld != NULL);
    CHECK(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1);
    CHECK(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *key = NULL;
    CHECK(params != NULL && ctx != NULL);
    CHECK(EVP_PKEY_fromdata_init(ctx) == 1);
    CHECK(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return key;
}

bool openssl_verifies(EVP_PKEY *key, const CK_BYTE *sig, CK_ULONG sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    CHECK(md != NULL);
    CHECK(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1);
    int ok = EVP_DigestVerify(md, sig, sig_len, message, sizeof message);
    EVP_MD_CTX_free(md);
    return ok == 1;
}

/* ---- parent side: counts JSON ---------------------------------------- */

void counts_path(char *out, size_t size, const char *name)
{
    int n = snprintf(out, size, "%s/counts-%s.json", tmpdir, name);
    assert_true(n > 0 && (size_t)n < size);
    unlink(out);
}

json_t *load_counts(const char *path)
{
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (root == NULL)
        fprintf(stderr, "%s: %s (line %d)\n", path, err.text, err.line);
    assert_non_null(root);
    assert_true(json_is_object(root));
    return root;
}

long long count_of(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    if (!json_is_integer(v))
        fprintf(stderr, "counts: \"%s\" missing or not an integer\n", key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

long long calls_of(json_t *root, const char *fn)
{
    json_t *calls = json_object_get(root, "calls");
    assert_true(json_is_object(calls));
    json_t *v = json_object_get(calls, fn);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

bool finalized_flag(json_t *root)
{
    json_t *v = json_object_get(root, "finalized");
    assert_true(json_is_boolean(v));
    return json_is_true(v);
}

CK_ULONG count_objects_labelled(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s,
                                       const char *label)
{
    CK_ATTRIBUTE tmpl[] = {{CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE found[4];
    CK_ULONG n = 0;
    CHECK_RV(p11->C_FindObjectsInit(s, tmpl, 1), CKR_OK);
    CHECK_RV(p11->C_FindObjects(s, found, 4, &n), CKR_OK);
    CHECK_RV(p11->C_FindObjectsFinal(s), CKR_OK);
    return n;
}

void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- fixture: a fresh SoftHSM token ---------------------------------- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int run_quietly(char *const argv[])
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL)
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int create_token(void **state)
{
    (void)state;
    return create_token_with_pin(USER_PIN);
}

int create_token_with_pin(const char *user_pin)
{
    const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/p11shim-test-XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL)
        return -1;

    char tokens[300], conf[300];
    snprintf(tokens, sizeof tokens, "%s/tokens", tmpdir);
    snprintf(conf, sizeof conf, "%s/softhsm2.conf", tmpdir);
    if (mkdir(tokens, 0700) != 0)
        return -1;
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens);
    if (fclose(f) != 0)
        return -1;
    setenv("SOFTHSM2_CONF", conf, 1);

    const char *util = getenv("SOFTHSM2_UTIL");
    char *argv[] = {(char *)(util != NULL ? util : "softhsm2-util"), "--init-token", "--free",
                    "--label", "t", "--so-pin", SO_PIN, "--pin", (char *)user_pin, NULL};
    if (run_quietly(argv) != 0) {
        fprintf(stderr, "softhsm2-util --init-token failed\n");
        return -1;
    }
    return 0;
}

int remove_token(void **state)
{
    (void)state;
    if (tmpdir[0] != '\0')
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
