/* Tests of the forwarding PKCS#11 shim against a real SoftHSMv2 token that
 * the test creates in a temporary directory.
 *
 * The shim reads its environment once per process, so every scenario runs
 * in a forked child that sets HSMSIGN_SHIM_* and only then loads the shim;
 * the parent never loads a PKCS#11 module. A child reports a failed check
 * on stderr and through its exit status; the parent asserts the status and
 * checks the counts JSON the shim wrote (parsed with jansson).
 *
 * Signatures made through the shim are verified by OpenSSL from the public
 * key read out of the token, not only by the token itself. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "p11shim_testlib.h"

/* ---- forwarding ------------------------------------------------------ */

static void sign_and_verify(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CK_SESSION_HANDLE s = open_logged_in(p11);
    struct keypair kp = generate_rsa(p11, s, 2048);

    CK_BYTE sig[512];
    CK_ULONG sig_len = sizeof sig;
    CHECK_RV(sign_message(p11, s, kp.priv, sig, &sig_len), CKR_OK);
    CHECK(sig_len == 256);
    CHECK_RV(verify_message(p11, s, kp.pub, message, sizeof message, sig, sig_len), CKR_OK);
    CHECK_RV(verify_message(p11, s, kp.pub, (const CK_BYTE *)"other", 5, sig, sig_len),
             CKR_SIGNATURE_INVALID);

    EVP_PKEY *key = public_key_from_token(p11, s, kp.pub);
    CHECK(openssl_verifies(key, sig, sig_len));
    sig[10] ^= 1;
    CHECK(!openssl_verifies(key, sig, sig_len));
    EVP_PKEY_free(key);

    CHECK_RV(p11->C_Logout(s), CKR_OK);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void test_forwarding_signs_and_verifies(void **state)
{
    (void)state;
    char counts[512], env_counts[600];
    counts_path(counts, sizeof counts, "forwarding");
    snprintf(env_counts, sizeof env_counts, "HSMSIGN_SHIM_COUNTS=%s", counts);
    const char *env[] = {env_counts, NULL};
    assert_int_equal(run_scenario(env, sign_and_verify, NULL), 0);

    json_t *root = load_counts(counts);
    assert_true(finalized_flag(root));
    assert_int_equal(count_of(root, "faults_injected"), 0);
    assert_int_equal(count_of(root, "logins"), 1);
    assert_int_equal(calls_of(root, "C_Sign"), 1);
    assert_int_equal(calls_of(root, "C_Verify"), 2);
    assert_int_equal(calls_of(root, "C_GenerateKeyPair"), 1);
    json_decref(root);
}

/* ---- fault injection ------------------------------------------------- */

/* C_Initialize is call 1, then C_GetInfo calls 2..6; expected[i] is the
 * answer to call i+2, and C_Finalize is call 7. */
struct getinfo_plan {
    CK_RV expected[5];
    CK_RV finalize_rv;
};

static void getinfo_calls(CK_FUNCTION_LIST *p11, const void *arg)
{
    const struct getinfo_plan *plan = arg;
    CK_INFO info;
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    for (int i = 0; i < 5; i++) {
        memset(&info, 0, sizeof info);
        CHECK_RV(p11->C_GetInfo(&info), plan->expected[i]);
        if (plan->expected[i] == CKR_OK)
            CHECK(info.cryptokiVersion.major == 2); /* really from the module */
    }
    CHECK_RV(p11->C_Finalize(NULL), plan->finalize_rv);
}

static json_t *run_getinfo(const char *name, const char *const *fault_env,
                           const struct getinfo_plan *plan)
{
    char counts[512], env_counts[600];
    const char *env[8];
    size_t n = 0;
    counts_path(counts, sizeof counts, name);
    snprintf(env_counts, sizeof env_counts, "HSMSIGN_SHIM_COUNTS=%s", counts);
    env[n++] = env_counts;
    for (size_t i = 0; fault_env[i] != NULL && n < 7; i++)
        env[n++] = fault_env[i];
    env[n] = NULL;
    assert_int_equal(run_scenario(env, getinfo_calls, plan), 0);
    return load_counts(counts);
}

static void test_fail_at_once(void **state)
{
    (void)state;
    const char *env[] = {"HSMSIGN_SHIM_FAIL_AT=4", "HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_REMOVED",
                         NULL};
    struct getinfo_plan plan = {{CKR_OK, CKR_OK, CKR_DEVICE_REMOVED, CKR_OK, CKR_OK}, CKR_OK};
    json_t *root = run_getinfo("fail-at-once", env, &plan);
    assert_int_equal(count_of(root, "faults_injected"), 1);
    assert_int_equal(count_of(root, "calls_total"), 7);
    assert_int_equal(calls_of(root, "C_GetInfo"), 5);
    assert_true(finalized_flag(root));
    json_decref(root);
}

static void test_fail_at_always(void **state)
{
    (void)state;
    /* From call 4 on everything fails, C_Finalize included; it is still
     * forwarded, which "finalized":true proves. */
    const char *env[] = {"HSMSIGN_SHIM_FAIL_AT=4", "HSMSIGN_SHIM_FAIL_MODE=always",
                         "HSMSIGN_SHIM_FAIL_RV=0x30", NULL};
    struct getinfo_plan plan = {
        {CKR_OK, CKR_OK, CKR_DEVICE_ERROR, CKR_DEVICE_ERROR, CKR_DEVICE_ERROR},
        CKR_DEVICE_ERROR};
    json_t *root = run_getinfo("fail-at-always", env, &plan);
    assert_int_equal(count_of(root, "faults_injected"), 4);
    assert_true(finalized_flag(root));
    json_decref(root);
}

/* Every accepted FAIL_RV spelling, via the first C_GetInfo. */
static void test_fail_rv_names(void **state)
{
    (void)state;
    static const struct {
        const char *env;
        CK_RV rv;
    } cases[] = {
        {"HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED},
        {"HSMSIGN_SHIM_FAIL_RV=CKR_SESSION_COUNT", CKR_SESSION_COUNT},
        {"HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_ERROR", CKR_DEVICE_ERROR},
        {"HSMSIGN_SHIM_FAIL_RV=CKR_PIN_INCORRECT", CKR_PIN_INCORRECT},
        {"HSMSIGN_SHIM_FAIL_RV=CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID},
        {"HSMSIGN_SHIM_FAIL_RV=CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT},
        {"HSMSIGN_SHIM_FAIL_RV=CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN},
        {"HSMSIGN_SHIM_FAIL_RV=CKR_GENERAL_ERROR", CKR_GENERAL_ERROR},
        {"HSMSIGN_SHIM_FAIL_RV=CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED},
        {"HSMSIGN_SHIM_FAIL_RV=0x80000001", 0x80000001UL},
        {"HSMSIGN_SHIM_FAIL_RV=0XB1", CKR_SESSION_COUNT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *env[] = {"HSMSIGN_SHIM_FAIL_FUNC=C_GetInfo", cases[i].env, NULL};
        struct getinfo_plan plan = {{cases[i].rv, CKR_OK, CKR_OK, CKR_OK, CKR_OK}, CKR_OK};
        json_t *root = run_getinfo("fail-rv", env, &plan);
        assert_int_equal(count_of(root, "faults_injected"), 1);
        json_decref(root);
    }
}

static void initialize_fails(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CHECK_RV(p11->C_Initialize(NULL), CKR_GENERAL_ERROR);
}

/* A typo in a test's environment must not silently disable its fault. */
static void test_bad_configuration_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "HSMSIGN_SHIM_FAIL_RV=CKR_NO_SUCH_CODE", "HSMSIGN_SHIM_FAIL_FUNC=C_Sing",
        "HSMSIGN_SHIM_FAIL_FUNC=C_GetFunctionList", "HSMSIGN_SHIM_FAIL_AT=3x",
        "HSMSIGN_SHIM_FAIL_AT=0", "HSMSIGN_SHIM_FAIL_MODE=twice",
        "HSMSIGN_SHIM_LATENCY=C_Sign:fast", "HSMSIGN_SHIM_LATENCY=C_Sign",
        "HSMSIGN_SHIM_LATENCY_MS=-5", "HSMSIGN_SHIM_MAX_SESSIONS=many",
        "HSMSIGN_SHIM_MODULE=/nonexistent/libnothing.so",
        "HSMSIGN_SHIM_FAIL_MODE=hang", /* without HSMSIGN_SHIM_HANG_MARK */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* FAIL_RV and FAIL_MODE need a FAIL_AT to be meaningful. */
        const char *env[] = {bad[i], "HSMSIGN_SHIM_FAIL_AT=9", NULL};
        if (strncmp(bad[i], "HSMSIGN_SHIM_FAIL_AT=", 21) == 0)
            env[1] = NULL;
        if (run_scenario(env, initialize_fails, NULL) != 0)
            fail_msg("configuration %s was accepted", bad[i]);
    }
}

/* Signs `message` three times in one session and expects the listed
 * answers. Each attempt starts with C_SignInit, which SoftHSM refuses with
 * CKR_OPERATION_ACTIVE unless the faulted C_Sign ended the real operation,
 * as a failing C_Sign does on a real token. */
static void sign_attempts(CK_FUNCTION_LIST *p11, const void *arg)
{
    const CK_RV *expected = arg;
    CK_SESSION_HANDLE s = open_logged_in(p11);
    struct keypair kp = generate_rsa(p11, s, 1024);

    for (int i = 0; i < 3; i++) {
        CK_BYTE sig[256];
        CK_ULONG sig_len = sizeof sig;
        memset(sig, 0xA5, sizeof sig);
        CHECK_RV(sign_message(p11, s, kp.priv, sig, &sig_len), expected[i]);
        if (expected[i] == CKR_OK) {
            CHECK_RV(verify_message(p11, s, kp.pub, message, sizeof message, sig, sig_len),
                     CKR_OK);
        } else { /* the application's buffers are left alone */
            CHECK(sig_len == sizeof sig);
            CHECK(sig[0] == 0xA5 && sig[sizeof sig - 1] == 0xA5);
        }
    }
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void run_sign_faults(const char *name, const char *mode, const CK_RV *expected,
                            long long faults)
{
    char counts[512], env_counts[600];
    counts_path(counts, sizeof counts, name);
    snprintf(env_counts, sizeof env_counts, "HSMSIGN_SHIM_COUNTS=%s", counts);
    const char *env[] = {env_counts, "HSMSIGN_SHIM_FAIL_FUNC=C_Sign", "HSMSIGN_SHIM_FAIL_AT=2",
                         "HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_ERROR", mode, NULL};
    assert_int_equal(run_scenario(env, sign_attempts, expected), 0);
    json_t *root = load_counts(counts);
    assert_int_equal(calls_of(root, "C_Sign"), 3);
    assert_int_equal(calls_of(root, "C_SignInit"), 3);
    assert_int_equal(count_of(root, "faults_injected"), faults);
    json_decref(root);
}

static void test_fail_func_once(void **state)
{
    (void)state;
    static const CK_RV expected[] = {CKR_OK, CKR_DEVICE_ERROR, CKR_OK};
    run_sign_faults("fail-func-once", "HSMSIGN_SHIM_FAIL_MODE=once", expected, 1);
}

static void test_fail_func_always(void **state)
{
    (void)state;
    static const CK_RV expected[] = {CKR_OK, CKR_DEVICE_ERROR, CKR_DEVICE_ERROR};
    run_sign_faults("fail-func-always", "HSMSIGN_SHIM_FAIL_MODE=always", expected, 2);
}

/* A faulted call that ends an operation in PKCS#11 ends the real one too:
 * a new Init on the same session succeeds. arg names the faulted call. */
static void fault_ends_operation(CK_FUNCTION_LIST *p11, const void *arg)
{
    const char *fn = arg;
    CK_SESSION_HANDLE s = open_logged_in(p11);
    struct keypair kp = generate_rsa(p11, s, 1024);
    CK_MECHANISM sign_mech = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_MECHANISM digest_mech = {CKM_SHA256, NULL, 0};
    CK_BYTE out[256];
    CK_ULONG out_len = sizeof out;

    if (strcmp(fn, "C_SignUpdate") == 0) {
        CHECK_RV(p11->C_SignInit(s, &sign_mech, kp.priv), CKR_OK);
        CHECK_RV(p11->C_SignUpdate(s, (CK_BYTE_PTR)message, sizeof message), CKR_DEVICE_ERROR);
    } else if (strcmp(fn, "C_Sign") == 0) { /* a failed length query ends it too */
        CHECK_RV(p11->C_SignInit(s, &sign_mech, kp.priv), CKR_OK);
        CHECK_RV(p11->C_Sign(s, (CK_BYTE_PTR)message, sizeof message, NULL, &out_len),
                 CKR_DEVICE_ERROR);
    } else if (strcmp(fn, "C_Digest") == 0) {
        CHECK_RV(p11->C_DigestInit(s, &digest_mech), CKR_OK);
        CHECK_RV(p11->C_Digest(s, (CK_BYTE_PTR)message, sizeof message, out, &out_len),
                 CKR_DEVICE_ERROR);
        CHECK_RV(p11->C_DigestInit(s, &digest_mech), CKR_OK);
        CHECK_RV(p11->C_Digest(s, (CK_BYTE_PTR)message, sizeof message, out, &out_len), CKR_OK);
        CHECK(out_len == 32);
    } else if (strcmp(fn, "C_VerifyFinal") == 0) {
        CHECK_RV(sign_message(p11, s, kp.priv, out, &out_len), CKR_OK);
        CHECK_RV(p11->C_VerifyInit(s, &sign_mech, kp.pub), CKR_OK);
        CHECK_RV(p11->C_VerifyUpdate(s, (CK_BYTE_PTR)message, sizeof message), CKR_OK);
        CHECK_RV(p11->C_VerifyFinal(s, out, out_len), CKR_DEVICE_ERROR);
        CHECK_RV(verify_message(p11, s, kp.pub, message, sizeof message, out, out_len), CKR_OK);
    } else {
        child_fail(__FILE__, __LINE__, "no plan for %s", fn);
    }
    /* The session is usable for a complete signature afterwards. */
    out_len = sizeof out;
    CHECK_RV(sign_message(p11, s, kp.priv, out, &out_len), CKR_OK);
    CHECK_RV(verify_message(p11, s, kp.pub, message, sizeof message, out, out_len), CKR_OK);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void test_fault_ends_real_operation(void **state)
{
    (void)state;
    static const char *const fns[] = {"C_SignUpdate", "C_Sign", "C_Digest", "C_VerifyFinal"};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        char fail_func[64];
        snprintf(fail_func, sizeof fail_func, "HSMSIGN_SHIM_FAIL_FUNC=%s", fns[i]);
        const char *env[] = {fail_func, "HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_ERROR", NULL};
        if (run_scenario(env, fault_ends_operation, fns[i]) != 0)
            fail_msg("fault in %s left the real operation active", fns[i]);
    }
}

/* A failing C_CloseSession / C_Finalize still reaches the module: the
 * module itself then says the session / the library is gone. */
static void failed_close_session(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CK_SESSION_INFO si;
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    CK_SESSION_HANDLE s = open_session(p11, token_slot(p11));
    CHECK_RV(p11->C_CloseSession(s), CKR_DEVICE_REMOVED);
    CHECK_RV(p11->C_GetSessionInfo(s, &si), CKR_SESSION_HANDLE_INVALID);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void failed_finalize(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CK_INFO info;
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    CHECK_RV(p11->C_Finalize(NULL), CKR_DEVICE_REMOVED);
    CHECK_RV(p11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    CHECK_RV(p11->C_GetInfo(&info), CKR_OK);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void test_failed_release_is_still_forwarded(void **state)
{
    (void)state;
    char counts[512], env_counts[600];
    counts_path(counts, sizeof counts, "release");
    snprintf(env_counts, sizeof env_counts, "HSMSIGN_SHIM_COUNTS=%s", counts);

    const char *close_env[] = {env_counts, "HSMSIGN_SHIM_FAIL_FUNC=C_CloseSession",
                               "HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_REMOVED", NULL};
    assert_int_equal(run_scenario(close_env, failed_close_session, NULL), 0);
    json_t *root = load_counts(counts);
    assert_int_equal(count_of(root, "sessions_opened"), 1);
    assert_int_equal(count_of(root, "sessions_closed"), 1);
    assert_int_equal(count_of(root, "sessions_closed_by_finalize"), 0);
    assert_int_equal(count_of(root, "sessions_open"), 0);
    assert_int_equal(count_of(root, "faults_injected"), 1);
    json_decref(root);

    const char *finalize_env[] = {"HSMSIGN_SHIM_FAIL_FUNC=C_Finalize",
                                  "HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_REMOVED", NULL};
    assert_int_equal(run_scenario(finalize_env, failed_finalize, NULL), 0);
}

/* ---- YubiHSM-like session limits ------------------------------------ */

static void session_limit(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    CK_SLOT_ID slot = token_slot(p11);
    CK_SESSION_HANDLE s[3], extra = CK_INVALID_HANDLE;
    for (int i = 0; i < 3; i++)
        s[i] = open_session(p11, slot);
    CHECK_RV(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &extra), CKR_SESSION_COUNT);
    CHECK(extra == CK_INVALID_HANDLE);
    CHECK_RV(p11->C_CloseSession(s[1]), CKR_OK);
    s[1] = open_session(p11, slot);
    CHECK_RV(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &extra), CKR_SESSION_COUNT);
    CHECK_RV(p11->C_CloseAllSessions(slot), CKR_OK);
    s[0] = open_session(p11, slot);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void test_max_sessions(void **state)
{
    (void)state;
    char counts[512], env_counts[600];
    counts_path(counts, sizeof counts, "max-sessions");
    snprintf(env_counts, sizeof env_counts, "HSMSIGN_SHIM_COUNTS=%s", counts);
    const char *env[] = {env_counts, "HSMSIGN_SHIM_MAX_SESSIONS=3", NULL};
    assert_int_equal(run_scenario(env, session_limit, NULL), 0);

    json_t *root = load_counts(counts);
    assert_int_equal(count_of(root, "sessions_refused"), 2);
    assert_int_equal(count_of(root, "sessions_opened"), 5);
    assert_int_equal(count_of(root, "max_sessions_open"), 3);
    assert_int_equal(count_of(root, "sessions_closed"), 5);
    assert_int_equal(count_of(root, "sessions_closed_by_close_all"), 3);
    assert_int_equal(count_of(root, "sessions_closed_by_finalize"), 1);
    assert_int_equal(calls_of(root, "C_OpenSession"), 7);
    json_decref(root);
}

/* Session `idle` holds a session object and goes quiet; session `busy`
 * keeps being used. After the timeout `idle` is invalid and, because the
 * shim closed it in SoftHSM, its object is gone for `busy` too. */
static void idle_session_expires(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    CK_SLOT_ID slot = token_slot(p11);
    CK_SESSION_HANDLE idle = open_session(p11, slot), busy = open_session(p11, slot);

    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL no = CK_FALSE;
    const char *label = "idle-probe";
    CK_ATTRIBUTE data[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_TOKEN, &no, sizeof no},
        {CKA_PRIVATE, &no, sizeof no}, /* creatable without a login */
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VALUE, "x", 1},
    };
    CK_OBJECT_HANDLE obj;
    CHECK_RV(p11->C_CreateObject(idle, data, 5, &obj), CKR_OK);
    CHECK(count_objects_labelled(p11, busy, label) == 1);

    CK_SESSION_INFO si;
    for (int i = 0; i < 32; i++) { /* 800 ms, busy used every 25 ms */
        sleep_ms(25);
        CHECK_RV(p11->C_GetSessionInfo(busy, &si), CKR_OK);
    }
    CHECK_RV(p11->C_GetSessionInfo(idle, &si), CKR_SESSION_HANDLE_INVALID);
    CHECK_RV(p11->C_CloseSession(idle), CKR_SESSION_HANDLE_INVALID);
    CHECK(count_objects_labelled(p11, busy, label) == 0);
    CHECK_RV(p11->C_CloseSession(busy), CKR_OK);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    char counts[512], env_counts[600];
    counts_path(counts, sizeof counts, "idle");
    snprintf(env_counts, sizeof env_counts, "HSMSIGN_SHIM_COUNTS=%s", counts);
    const char *env[] = {env_counts, "HSMSIGN_SHIM_IDLE_TIMEOUT_MS=500", NULL};
    assert_int_equal(run_scenario(env, idle_session_expires, NULL), 0);

    json_t *root = load_counts(counts);
    assert_int_equal(count_of(root, "sessions_expired"), 1);
    assert_int_equal(count_of(root, "sessions_opened"), 2);
    assert_int_equal(count_of(root, "sessions_closed"), 2);
    assert_int_equal(count_of(root, "sessions_open"), 0);
    json_decref(root);
}

/* ---- latency: lower bounds only -------------------------------------- */

struct latency_plan {
    int getinfo_calls;
    double at_least_ms;
};

static void timed_getinfo(CK_FUNCTION_LIST *p11, const void *arg)
{
    const struct latency_plan *plan = arg;
    CK_INFO info;
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    double start = now_ms();
    for (int i = 0; i < plan->getinfo_calls; i++)
        CHECK_RV(p11->C_GetInfo(&info), CKR_OK);
    double elapsed = now_ms() - start;
    if (elapsed < plan->at_least_ms)
        child_fail(__FILE__, __LINE__, "%d C_GetInfo took %.1f ms, expected at least %.1f ms",
                   plan->getinfo_calls, elapsed, plan->at_least_ms);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void test_latency(void **state)
{
    (void)state;
    const char *every[] = {"HSMSIGN_SHIM_LATENCY_MS=30", NULL};
    struct latency_plan four_calls = {4, 120.0};
    assert_int_equal(run_scenario(every, timed_getinfo, &four_calls), 0);

    const char *one_fn[] = {"HSMSIGN_SHIM_LATENCY=C_Sign:5,C_GetInfo:80", NULL};
    struct latency_plan one_call = {1, 80.0};
    assert_int_equal(run_scenario(one_fn, timed_getinfo, &one_call), 0);

    const char *both[] = {"HSMSIGN_SHIM_LATENCY_MS=20", "HSMSIGN_SHIM_LATENCY=C_GetInfo:50",
                          NULL};
    struct latency_plan summed = {2, 140.0};
    assert_int_equal(run_scenario(both, timed_getinfo, &summed), 0);
}

/* ---- counts file ----------------------------------------------------- */

/* Known calls: 1 Initialize, 2 GetSlotList, 3-4 OpenSession, 5 Login
 * (wrong PIN), 6 Login, 7 CloseSession, 8 Finalize. */
static void known_sequence(CK_FUNCTION_LIST *p11, const void *arg)
{
    bool finalize = *(const bool *)arg;
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    CK_SLOT_ID slot = token_slot(p11);
    CK_SESSION_HANDLE a = open_session(p11, slot), b = open_session(p11, slot);
    CHECK_RV(p11->C_Login(a, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4), CKR_PIN_INCORRECT);
    CHECK_RV(p11->C_Login(a, CKU_USER, (CK_UTF8CHAR_PTR)USER_PIN, strlen(USER_PIN)), CKR_OK);
    CHECK_RV(p11->C_CloseSession(a), CKR_OK);
    (void)b; /* left open: only C_Finalize closes it */
    if (finalize) {
        CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
        return;
    }
    /* A forked child exiting normally must not write its parent's file. */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        exit(0);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    const char *path = getenv("HSMSIGN_SHIM_COUNTS");
    CHECK(path != NULL && access(path, F_OK) != 0);
    exit(0); /* without C_Finalize: the shim's destructor writes the file */
}

static void check_known_sequence(json_t *root)
{
    assert_int_equal(count_of(root, "calls_total"), 8 - (finalized_flag(root) ? 0 : 1));
    assert_int_equal(calls_of(root, "C_Initialize"), 1);
    assert_int_equal(calls_of(root, "C_GetSlotList"), 1);
    assert_int_equal(calls_of(root, "C_OpenSession"), 2);
    assert_int_equal(calls_of(root, "C_Login"), 2);
    assert_int_equal(calls_of(root, "C_CloseSession"), 1);
    assert_int_equal(calls_of(root, "C_Sign"), 0);
    assert_int_equal(count_of(root, "logins"), 1);
    assert_int_equal(count_of(root, "sessions_opened"), 2);
    assert_int_equal(count_of(root, "max_sessions_open"), 2);
    assert_int_equal(count_of(root, "faults_injected"), 0);
    assert_int_equal(count_of(root, "sessions_expired"), 0);
    assert_int_equal(count_of(root, "sessions_refused"), 0);

    /* Every forwarded function is listed, and they add up. */
    json_t *calls = json_object_get(root, "calls");
    assert_int_equal(json_object_size(calls), 67);
    long long sum = 0;
    const char *key;
    json_t *value;
    json_object_foreach(calls, key, value)
    {
        assert_true(json_is_integer(value));
        sum += json_integer_value(value);
    }
    assert_int_equal(sum, count_of(root, "calls_total"));
}

static void test_counts_after_finalize(void **state)
{
    (void)state;
    char counts[512], env_counts[600];
    counts_path(counts, sizeof counts, "after-finalize");
    snprintf(env_counts, sizeof env_counts, "HSMSIGN_SHIM_COUNTS=%s", counts);
    const char *env[] = {env_counts, NULL};
    bool finalize = true;
    assert_int_equal(run_scenario(env, known_sequence, &finalize), 0);

    json_t *root = load_counts(counts);
    assert_true(finalized_flag(root));
    check_known_sequence(root);
    assert_int_equal(calls_of(root, "C_Finalize"), 1);
    assert_int_equal(count_of(root, "sessions_closed"), 2);
    assert_int_equal(count_of(root, "sessions_closed_by_finalize"), 1);
    assert_int_equal(count_of(root, "sessions_open"), 0);
    json_decref(root);
}

static void test_counts_without_finalize(void **state)
{
    (void)state;
    char counts[512], env_counts[600];
    counts_path(counts, sizeof counts, "no-finalize");
    snprintf(env_counts, sizeof env_counts, "HSMSIGN_SHIM_COUNTS=%s", counts);
    const char *env[] = {env_counts, NULL};
    bool finalize = false;
    assert_int_equal(run_scenario(env, known_sequence, &finalize), 0);

    json_t *root = load_counts(counts);
    assert_false(finalized_flag(root));
    check_known_sequence(root);
    assert_int_equal(calls_of(root, "C_Finalize"), 0);
    assert_int_equal(count_of(root, "sessions_closed"), 1);
    assert_int_equal(count_of(root, "sessions_closed_by_finalize"), 0);
    assert_int_equal(count_of(root, "sessions_open"), 1);
    json_decref(root);
}

/* ---- concurrency ----------------------------------------------------- */

#define THREADS 8
#define ROUNDS 20
#define INFO_CALLS 5000

struct worker {
    CK_FUNCTION_LIST *p11;
    CK_SLOT_ID slot;
    int failures;
};

/* Opens, uses and closes sessions; CKR_SESSION_COUNT means "try again". */
static void *session_churn(void *arg)
{
    struct worker *w = arg;
    for (int done = 0; done < ROUNDS;) {
        CK_SESSION_HANDLE s;
        CK_RV rv = w->p11->C_OpenSession(w->slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
        if (rv == CKR_SESSION_COUNT) {
            sleep_ms(1);
            continue;
        }
        CK_SESSION_INFO si;
        if (rv != CKR_OK || w->p11->C_GetSessionInfo(s, &si) != CKR_OK ||
            w->p11->C_CloseSession(s) != CKR_OK)
            w->failures++;
        done++;
    }
    /* Many cheap calls at once: lost counter updates would show here. */
    CK_INFO info;
    for (int i = 0; i < INFO_CALLS; i++)
        if (w->p11->C_GetInfo(&info) != CKR_OK)
            w->failures++;
    return NULL;
}

static void concurrent_sessions(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CHECK_RV(p11->C_Initialize(&(CK_C_INITIALIZE_ARGS){.flags = CKF_OS_LOCKING_OK}), CKR_OK);
    CK_SLOT_ID slot = token_slot(p11);
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (struct worker){p11, slot, 0};
        CHECK(pthread_create(&threads[i], NULL, session_churn, &workers[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK(workers[i].failures == 0);
    }
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void test_threads(void **state)
{
    (void)state;
    char counts[512], env_counts[600];
    counts_path(counts, sizeof counts, "threads");
    snprintf(env_counts, sizeof env_counts, "HSMSIGN_SHIM_COUNTS=%s", counts);
    /* The latency keeps C_OpenSession in flight long enough for the
     * threads to race for the last session slot. */
    const char *env[] = {env_counts, "HSMSIGN_SHIM_MAX_SESSIONS=3",
                         "HSMSIGN_SHIM_LATENCY=C_OpenSession:3", NULL};
    assert_int_equal(run_scenario(env, concurrent_sessions, NULL), 0);

    json_t *root = load_counts(counts);
    assert_int_equal(count_of(root, "sessions_opened"), THREADS * ROUNDS);
    assert_int_equal(count_of(root, "sessions_closed"), THREADS * ROUNDS);
    assert_int_equal(count_of(root, "sessions_closed_by_finalize"), 0);
    assert_int_equal(calls_of(root, "C_GetSessionInfo"), THREADS * ROUNDS);
    assert_int_equal(calls_of(root, "C_GetInfo"), THREADS * INFO_CALLS);
    assert_true(count_of(root, "sessions_refused") > 0); /* the limit was reached */
    assert_int_equal(calls_of(root, "C_OpenSession"),
                     THREADS * ROUNDS + count_of(root, "sessions_refused"));
    /* The limit holds under concurrency: never more than 3 open at once. */
    assert_in_range(count_of(root, "max_sessions_open"), 1, 3);
    json_decref(root);
}

int main(void)
{
    if (getenv("HSMSIGN_P11SHIM") == NULL || getenv("HSMSIGN_SOFTHSM_MODULE") == NULL) {
        fprintf(stderr, "HSMSIGN_P11SHIM and HSMSIGN_SOFTHSM_MODULE must be set (meson test)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forwarding_signs_and_verifies),
        cmocka_unit_test(test_fail_at_once),
        cmocka_unit_test(test_fail_at_always),
        cmocka_unit_test(test_fail_rv_names),
        cmocka_unit_test(test_bad_configuration_is_refused),
        cmocka_unit_test(test_fail_func_once),
        cmocka_unit_test(test_fail_func_always),
        cmocka_unit_test(test_fault_ends_real_operation),
        cmocka_unit_test(test_failed_release_is_still_forwarded),
        cmocka_unit_test(test_max_sessions),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_latency),
        cmocka_unit_test(test_counts_after_finalize),
        cmocka_unit_test(test_counts_without_finalize),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, create_token, remove_token);
}
