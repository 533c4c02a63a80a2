/* The shim's yubihsm2 personality (HSMSIGN_SHIM_PERSONALITY=yubihsm2),
 * observed through raw PKCS#11 against a SoftHSM token the test creates.
 * Each behaviour README.md lists for the personality has a scenario here;
 * scenarios run in forked children (see p11shim_testlib.h) and leave the
 * token empty for the next one.
 *
 * The token's SoftHSM user PIN is the password part of the YubiHSM PIN:
 * the application logs in with "0001" YH_PASSWORD. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "p11shim.h"
#include "p11shim_testlib.h"

#define YH_PASSWORD "password"
#define YH_PIN "0001" YH_PASSWORD
#define CONNECTOR "connector=http://127.0.0.1:12345"

static const char *const personality = "HSMSIGN_SHIM_PERSONALITY=yubihsm2";

/* ---- child helpers ----------------------------------------------------- */

static CK_C_INITIALIZE_ARGS init_args = {.pReserved = CONNECTOR};

static CK_SESSION_HANDLE yh_open_logged_in(CK_FUNCTION_LIST *p11)
{
    CHECK_RV(p11->C_Initialize(&init_args), CKR_OK);
    CK_SESSION_HANDLE s = open_session(p11, token_slot(p11));
    CHECK_RV(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)YH_PIN, strlen(YH_PIN)), CKR_OK);
    return s;
}

static CK_ULONG find_all(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s, CK_ATTRIBUTE *t, CK_ULONG n,
                         CK_OBJECT_HANDLE *out, CK_ULONG max)
{
    CK_ULONG total = 0, got = 0;
    CHECK_RV(p11->C_FindObjectsInit(s, t, n), CKR_OK);
    do {
        CHECK_RV(p11->C_FindObjects(s, out + total, max - total, &got), CKR_OK);
        total += got;
    } while (got > 0 && total < max);
    CHECK_RV(p11->C_FindObjectsFinal(s), CKR_OK);
    return total;
}

/* Deletes every private key, secret key and data object (public keys go
 * with their private key) and checks the token is empty. */
static void empty_token(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s)
{
    static CK_OBJECT_HANDLE all[512];
    static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_SECRET_KEY, CKO_DATA};
    for (size_t c = 0; c < 3; c++) {
        CK_OBJECT_CLASS cls = classes[c];
        CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof cls};
        CK_ULONG n = find_all(p11, s, &t, 1, all, 512);
        for (CK_ULONG i = 0; i < n; i++)
            CHECK_RV(p11->C_DestroyObject(s, all[i]), CKR_OK);
    }
    CHECK(find_all(p11, s, NULL, 0, all, 512) == 0);
}

static CK_OBJECT_HANDLE create_data(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s, const char *label,
                                    CK_ULONG size, CK_RV want)
{
    static CK_BYTE value[2048];
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_TOKEN, &no, sizeof no},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VALUE, value, size},
    };
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    CHECK_RV(p11->C_CreateObject(s, t, 4, &obj), want);
    return obj;
}

static CK_BBOOL bool_attr(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                          CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL v = 0xA5;
    CK_ATTRIBUTE a = {type, &v, sizeof v};
    CHECK_RV(p11->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
    return v;
}

static const CK_BYTE wrap_key_value[32] = "0123456789abcdef0123456789abcdef";

static CK_OBJECT_HANDLE create_wrap_key(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_YUBICO_AES256_CCM_WRAP;
    CK_BBOOL yes = CK_TRUE;
    CK_BYTE id[] = {0x00, 0x0a};
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_ID, id, sizeof id},       {CKA_LABEL, "wrap", 4},
        {CKA_WRAP, &yes, sizeof yes},  {CKA_UNWRAP, &yes, sizeof yes},
        {CKA_VALUE, (void *)wrap_key_value, sizeof wrap_key_value},
    };
    CK_OBJECT_HANDLE key;
    CHECK_RV(p11->C_CreateObject(s, t, 7, &key), CKR_OK);
    CK_KEY_TYPE got = 0;
    CK_ATTRIBUTE a = {CKA_KEY_TYPE, &got, sizeof got};
    CHECK_RV(p11->C_GetAttributeValue(s, key, &a, 1), CKR_OK);
    CHECK(got == CKK_YUBICO_AES256_CCM_WRAP);
    return key;
}

/* An RSA-2048 signing key as hsmsign's yubihsm profile makes it: sign
 * only, exportable under wrap. CKA_TOKEN false is asked for and ignored. */
static struct keypair generate_signing_key(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s,
                                           CK_ULONG bits, CK_RV want)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_BYTE exponent[] = {1, 0, 1};
    CK_BYTE id[] = {0x01, 0x02};
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub_tmpl[] = {
        {CKA_TOKEN, &no, sizeof no},          {CKA_VERIFY, &yes, sizeof yes},
        {CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, exponent, sizeof exponent},
        {CKA_ID, id, sizeof id},
    };
    CK_ATTRIBUTE priv_tmpl[] = {
        {CKA_TOKEN, &no, sizeof no},       {CKA_SIGN, &yes, sizeof yes},
        {CKA_DECRYPT, &no, sizeof no},     {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes}, {CKA_EXTRACTABLE, &yes, sizeof yes},
        {CKA_ID, id, sizeof id},           {CKA_LABEL, "release-key", 11},
    };
    struct keypair kp = {0, 0};
    CHECK_RV(p11->C_GenerateKeyPair(s, &mech, pub_tmpl, 5, priv_tmpl, 8, &kp.pub, &kp.priv),
             want);
    return kp;
}

static void finish(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s)
{
    empty_token(p11, s);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

/* env[0] = "HSMSIGN_SHIM_COUNTS=<counts>" for a fresh counts file. */
static void with_counts(char *env_counts, size_t size, const char *name, char *counts,
                        size_t counts_size, const char **env)
{
    counts_path(counts, counts_size, name);
    snprintf(env_counts, size, "HSMSIGN_SHIM_COUNTS=%s", counts);
    env[0] = env_counts;
}

static json_t *yh_counts(json_t *root)
{
    json_t *yh = json_object_get(root, "yubihsm");
    assert_true(json_is_object(yh));
    return yh;
}

/* ---- configuration: the connector --------------------------------------- */

struct init_case {
    const char *reserved;
    CK_RV want;
};

static void initialize_with(CK_FUNCTION_LIST *p11, const void *arg)
{
    const struct init_case *c = arg;
    CK_C_INITIALIZE_ARGS a = {.pReserved = (void *)c->reserved};
    CHECK_RV(p11->C_Initialize(c->reserved != NULL ? &a : NULL), c->want);
    if (c->want == CKR_OK) {
        CK_SLOT_INFO si;
        CHECK_RV(p11->C_GetSlotInfo(token_slot(p11), &si), CKR_OK);
        CHECK(memcmp(si.manufacturerID, "Yubico ", 7) == 0);
        CHECK(memcmp(si.slotDescription, "YubiHSM Connector http://127.0.0.1:", 35) == 0);
        CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
    }
}

static void test_connector_configuration_required(void **state)
{
    (void)state;
    char counts[512], env_counts[600], conf_env[600], conf[512];
    const char *env[4] = {NULL, personality, NULL, NULL};
    with_counts(env_counts, sizeof env_counts, "yh-config", counts, sizeof counts, env);

    /* Neither pReserved nor YUBIHSM_PKCS11_CONF: the module has no connector. */
    struct init_case none = {NULL, CKR_ARGUMENTS_BAD};
    assert_int_equal(run_scenario(env, initialize_with, &none), 0);
    struct init_case no_connector = {"debug", CKR_ARGUMENTS_BAD};
    assert_int_equal(run_scenario(env, initialize_with, &no_connector), 0);

    struct init_case reserved = {"debug connector=http://127.0.0.1:12345", CKR_OK};
    assert_int_equal(run_scenario(env, initialize_with, &reserved), 0);
    json_t *root = load_counts(counts);
    assert_string_equal(json_string_value(json_object_get(root, "personality")), "yubihsm2");
    json_t *yh = yh_counts(root);
    assert_string_equal(json_string_value(json_object_get(yh, "connector")),
                        "http://127.0.0.1:12345");
    assert_string_equal(json_string_value(json_object_get(yh, "config_source")), "pReserved");
    json_decref(root);

    /* The configuration file named by YUBIHSM_PKCS11_CONF. */
    counts_path(conf, sizeof conf, "yh-conf-file");
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fputs("# yubihsm_pkcs11.conf\nconnector = http://127.0.0.1:23456\n", f);
    assert_int_equal(fclose(f), 0);
    snprintf(conf_env, sizeof conf_env, "YUBIHSM_PKCS11_CONF=%s", conf);
    env[2] = conf_env;
    struct init_case from_file = {NULL, CKR_OK};
    assert_int_equal(run_scenario(env, initialize_with, &from_file), 0);
    root = load_counts(counts);
    yh = yh_counts(root);
    assert_string_equal(json_string_value(json_object_get(yh, "connector")),
                        "http://127.0.0.1:23456");
    assert_string_equal(json_string_value(json_object_get(yh, "config_source")),
                        "YUBIHSM_PKCS11_CONF");
    json_decref(root);

    /* A configuration file that cannot be read is the module's parse error. */
    unlink(conf);
    struct init_case missing_file = {NULL, CKR_GENERAL_ERROR};
    assert_int_equal(run_scenario(env, initialize_with, &missing_file), 0);
}

/* ---- identity ------------------------------------------------------------ */

static void token_identity(CK_FUNCTION_LIST *p11, const void *arg)
{
    const CK_VERSION *want = arg;
    CK_TOKEN_INFO ti;
    CHECK_RV(p11->C_Initialize(&init_args), CKR_OK);
    CHECK_RV(p11->C_GetTokenInfo(token_slot(p11), &ti), CKR_OK);
    CHECK(memcmp(ti.manufacturerID, "Yubico (www.yubico.com) ", 24) == 0);
    CHECK(memcmp(ti.model, "YubiHSM ", 8) == 0);
    CHECK(memcmp(ti.label, "YubiHSM ", 8) == 0);
    CHECK(ti.firmwareVersion.major == want->major && ti.firmwareVersion.minor == want->minor);
    CHECK(ti.ulMinPinLen == 8 && ti.ulMaxPinLen == 64);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void test_token_identity_and_firmware(void **state)
{
    (void)state;
    const char *env[] = {personality, NULL, NULL};
    CK_VERSION v240 = {2, 40}; /* yubihsm_pkcs11: major, minor * 10 + patch */
    assert_int_equal(run_scenario(env, token_identity, &v240), 0);
    env[1] = "HSMSIGN_SHIM_YUBIHSM_FIRMWARE=2.3.1";
    CK_VERSION v231 = {2, 31};
    assert_int_equal(run_scenario(env, token_identity, &v231), 0);
}

/* ---- mechanisms ----------------------------------------------------------- */

static void mechanisms(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CHECK_RV(p11->C_Initialize(&init_args), CKR_OK);
    CK_SLOT_ID slot = token_slot(p11);
    CK_MECHANISM_TYPE list[256];
    CK_ULONG n = 0;
    CHECK_RV(p11->C_GetMechanismList(slot, NULL, &n), CKR_OK);
    CHECK(n > 1 && n <= 256);
    CK_ULONG short_n = 1;
    CHECK_RV(p11->C_GetMechanismList(slot, list, &short_n), CKR_BUFFER_TOO_SMALL);
    CHECK(short_n == n);
    CHECK_RV(p11->C_GetMechanismList(slot, list, &n), CKR_OK);
    bool vendor = false, sha256_rsa = false;
    for (CK_ULONG i = 0; i < n; i++) {
        CHECK(list[i] != CKM_AES_KEY_WRAP && list[i] != CKM_AES_KEY_WRAP_PAD &&
              list[i] != 0x210B);
        vendor |= list[i] == CKM_YUBICO_AES_CCM_WRAP;
        sha256_rsa |= list[i] == CKM_SHA256_RSA_PKCS;
        CK_MECHANISM_INFO mi;
        CHECK_RV(p11->C_GetMechanismInfo(slot, list[i], &mi), CKR_OK);
        /* The Yubico mechanism is the only one that wraps. */
        CHECK(((mi.flags & (CKF_WRAP | CKF_UNWRAP)) != 0) == (list[i] == CKM_YUBICO_AES_CCM_WRAP));
    }
    CHECK(vendor && sha256_rsa);
    CK_MECHANISM_INFO mi;
    CHECK_RV(p11->C_GetMechanismInfo(slot, CKM_AES_KEY_WRAP_PAD, &mi), CKR_MECHANISM_INVALID);
    CHECK_RV(p11->C_GetMechanismInfo(slot, CKM_YUBICO_AES_CCM_WRAP, &mi), CKR_OK);
    CHECK(mi.ulMinKeySize == 128 && mi.ulMaxKeySize == 256);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void test_mechanisms_offer_only_the_yubico_wrap(void **state)
{
    (void)state;
    const char *env[] = {personality, NULL};
    assert_int_equal(run_scenario(env, mechanisms, NULL), 0);
}

/* ---- PIN format ------------------------------------------------------------- */

static void login_formats(CK_FUNCTION_LIST *p11, const void *arg)
{
    bool second_key = *(const bool *)arg;
    CHECK_RV(p11->C_Initialize(&init_args), CKR_OK);
    CK_SESSION_HANDLE s = open_session(p11, token_slot(p11));
    static const struct {
        const char *pin;
        CK_RV want;
    } cases[] = {
        {YH_PASSWORD, CKR_ARGUMENTS_BAD},        /* no ID: "pass" + a 4-byte password */
        {"0001short", CKR_ARGUMENTS_BAD},        /* password under 8 bytes */
        {"zzzz" YH_PASSWORD, CKR_PIN_INCORRECT}, /* ID not hex */
        {"0003" YH_PASSWORD, CKR_PIN_INCORRECT}, /* no such authentication key */
        {"0001wrongpassword", CKR_PIN_INCORRECT}, /* SoftHSM says no */
        {"@0001" YH_PASSWORD, CKR_PIN_INCORRECT}, /* asymmetric auth: not emulated */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_RV(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)cases[i].pin, strlen(cases[i].pin)),
                 cases[i].want);
    CHECK_RV(p11->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)YH_PIN, strlen(YH_PIN)),
             CKR_USER_TYPE_INVALID);
    const char *pin = "0002" YH_PASSWORD;
    CHECK_RV(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)),
             second_key ? CKR_OK : CKR_PIN_INCORRECT);
    if (!second_key)
        CHECK_RV(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)YH_PIN, strlen(YH_PIN)), CKR_OK);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void test_pin_is_auth_key_id_and_password(void **state)
{
    (void)state;
    bool second_key = false;
    const char *env[] = {personality, NULL, NULL};
    assert_int_equal(run_scenario(env, login_formats, &second_key), 0);
    second_key = true;
    env[1] = "HSMSIGN_SHIM_YUBIHSM_AUTH_KEYS=0001,0002";
    assert_int_equal(run_scenario(env, login_formats, &second_key), 0);
}

/* ---- objects are persistent ---------------------------------------------------- */

static void persistent_objects(CK_FUNCTION_LIST *p11, const void *arg)
{
    bool second_process = *(const bool *)arg;
    CK_SESSION_HANDLE s = yh_open_logged_in(p11);
    if (second_process) { /* what the first process made outlived it */
        CHECK(count_objects_labelled(p11, s, "kept") == 1);
        CHECK(count_objects_labelled(p11, s, "release-key") == 1);
        finish(p11, s);
        return;
    }
    empty_token(p11, s);
    CK_OBJECT_HANDLE data = create_data(p11, s, "kept", 10, CKR_OK);
    CHECK(bool_attr(p11, s, data, CKA_TOKEN) == CK_TRUE);
    struct keypair kp = generate_signing_key(p11, s, 1024, CKR_OK);
    CHECK(bool_attr(p11, s, kp.priv, CKA_TOKEN) == CK_TRUE);
    CHECK(bool_attr(p11, s, kp.pub, CKA_TOKEN) == CK_TRUE);
    /* C_CopyObject is not in yubihsm_pkcs11. */
    CK_OBJECT_HANDLE copy;
    CHECK_RV(p11->C_CopyObject(s, data, NULL, 0, &copy), CKR_FUNCTION_NOT_SUPPORTED);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

/* Deleting a public key does nothing; deleting the private key deletes
 * the asymmetric object, public half included. */
static void delete_key_pair(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CK_SESSION_HANDLE s = yh_open_logged_in(p11);
    struct keypair kp = generate_signing_key(p11, s, 1024, CKR_OK);
    CHECK_RV(p11->C_DestroyObject(s, kp.pub), CKR_OK);
    CK_OBJECT_CLASS pub_cls = CKO_PUBLIC_KEY;
    CK_ATTRIBUTE t = {CKA_CLASS, &pub_cls, sizeof pub_cls};
    CK_OBJECT_HANDLE found[4];
    CHECK(find_all(p11, s, &t, 1, found, 4) == 1);
    CHECK_RV(p11->C_DestroyObject(s, kp.priv), CKR_OK);
    CHECK(find_all(p11, s, &t, 1, found, 4) == 0);
    finish(p11, s);
}

static void test_objects_are_persistent(void **state)
{
    (void)state;
    char counts[512], env_counts[600];
    const char *env[3] = {NULL, personality, NULL};
    with_counts(env_counts, sizeof env_counts, "yh-persistent", counts, sizeof counts, env);
    bool second = false;
    assert_int_equal(run_scenario(env, persistent_objects, &second), 0);
    json_t *root = load_counts(counts);
    json_t *yh = yh_counts(root);
    assert_int_equal(count_of(yh, "objects_created"), 2);
    assert_int_equal(count_of(yh, "objects_left"), 3); /* data, key pair, auth key */
    json_decref(root);
    second = true;
    assert_int_equal(run_scenario(env, persistent_objects, &second), 0);
    root = load_counts(counts);
    yh = yh_counts(root);
    assert_int_equal(count_of(yh, "objects_deleted"), 2);
    assert_int_equal(count_of(yh, "objects_left"), 1);
    json_decref(root);
    assert_int_equal(run_scenario(env, delete_key_pair, NULL), 0);
}

/* ---- CKM_YUBICO_AES_CCM_WRAP ------------------------------------------------ */

static CK_RV unwrap_with_template(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s,
                                  CK_OBJECT_HANDLE wrap_key, CK_BYTE *blob, CK_ULONG len,
                                  CK_OBJECT_HANDLE *out)
{
    /* Everything here contradicts the blob; the module must not read it. */
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_KEY_TYPE kt = CKK_RSA;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_BYTE other_id[] = {0x77, 0x77};
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},      {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_TOKEN, &no, sizeof no},        {CKA_ID, other_id, sizeof other_id},
        {CKA_LABEL, "from-template", 13},   {CKA_DECRYPT, &yes, sizeof yes},
        {CKA_SIGN, &no, sizeof no},
    };
    CK_MECHANISM mech = {CKM_YUBICO_AES_CCM_WRAP, NULL, 0};
    *out = CK_INVALID_HANDLE;
    return p11->C_UnwrapKey(s, &mech, wrap_key, blob, len, t, 7, out);
}

static void wrap_round_trip(CK_FUNCTION_LIST *p11, const void *arg)
{
    bool leave_unwrapped = *(const bool *)arg;
    CK_SESSION_HANDLE s = yh_open_logged_in(p11);
    empty_token(p11, s);
    CK_OBJECT_HANDLE wk = create_wrap_key(p11, s);
    struct keypair kp = generate_signing_key(p11, s, 2048, CKR_OK);
    EVP_PKEY *pub = public_key_from_token(p11, s, kp.pub);

    CK_MECHANISM yubico = {CKM_YUBICO_AES_CCM_WRAP, NULL, 0};
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    CK_BYTE blob[4096];
    CK_ULONG len = 0;
    CHECK_RV(p11->C_WrapKey(s, &yubico, wk, kp.priv, NULL, &len), CKR_OK);
    CHECK(len == 3136); /* YH_MSG_BUF_SIZE, as yubihsm_pkcs11 answers */
    len = sizeof blob;
    CHECK_RV(p11->C_WrapKey(s, &kwp, wk, kp.priv, blob, &len), CKR_MECHANISM_INVALID);
    len = sizeof blob;
    CHECK_RV(p11->C_WrapKey(s, &yubico, wk, kp.priv, blob, &len), CKR_OK);
    CHECK(len > 1000 && len < 3136);

    /* The ID 0x0102 is taken by the key itself. */
    CK_OBJECT_HANDLE key;
    CHECK_RV(unwrap_with_template(p11, s, wk, blob, len, &key), CKR_ATTRIBUTE_VALUE_INVALID);
    CHECK_RV(p11->C_DestroyObject(s, kp.priv), CKR_OK);

    /* A changed byte anywhere, or another wrap key: refused. */
    blob[len / 2] ^= 1;
    CHECK_RV(unwrap_with_template(p11, s, wk, blob, len, &key), CKR_WRAPPED_KEY_INVALID);
    blob[len / 2] ^= 1;
    blob[len - 3] ^= 1; /* in the seal's tag */
    CHECK_RV(unwrap_with_template(p11, s, wk, blob, len, &key), CKR_WRAPPED_KEY_INVALID);
    blob[len - 3] ^= 1;
    blob[len - 20] ^= 1; /* in the sealed metadata (the last capability) */
    CHECK_RV(unwrap_with_template(p11, s, wk, blob, len, &key), CKR_WRAPPED_KEY_INVALID);
    blob[len - 20] ^= 1;
    CHECK_RV(unwrap_with_template(p11, s, wk, blob, len, &key), CKR_OK);

    /* The blob's ID, label and capabilities, not the template's. */
    CK_BYTE id[8], label[32];
    CK_ATTRIBUTE a[] = {{CKA_ID, id, sizeof id}, {CKA_LABEL, label, sizeof label}};
    CHECK_RV(p11->C_GetAttributeValue(s, key, a, 2), CKR_OK);
    CHECK(a[0].ulValueLen == 2 && id[0] == 0x01 && id[1] == 0x02);
    CHECK(a[1].ulValueLen == 11 && memcmp(label, "release-key", 11) == 0);
    CHECK(bool_attr(p11, s, key, CKA_SIGN) == CK_TRUE);
    CHECK(bool_attr(p11, s, key, CKA_DECRYPT) == CK_FALSE);
    CHECK(bool_attr(p11, s, key, CKA_TOKEN) == CK_TRUE);
    CHECK(bool_attr(p11, s, key, CKA_EXTRACTABLE) == CK_TRUE);

    /* SoftHSM signs with the unwrapped key; OpenSSL checks the signature
     * against the public key of the original pair. */
    CK_BYTE sig[256];
    CK_ULONG sig_len = sizeof sig;
    CHECK_RV(sign_message(p11, s, key, sig, &sig_len), CKR_OK);
    CHECK(openssl_verifies(pub, sig, sig_len));
    EVP_PKEY_free(pub);

    /* A second unwrap of the same blob collides with the first. */
    CK_OBJECT_HANDLE again;
    CHECK_RV(unwrap_with_template(p11, s, wk, blob, len, &again), CKR_ATTRIBUTE_VALUE_INVALID);

    /* Another wrap key cannot open the blob. */
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_YUBICO_AES256_CCM_WRAP;
    CK_BBOOL yes = CK_TRUE;
    CK_ULONG key_len = 32;
    CK_ATTRIBUTE gen[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &kt, sizeof kt},
                          {CKA_UNWRAP, &yes, sizeof yes}, {CKA_WRAP, &yes, sizeof yes},
                          {CKA_VALUE_LEN, &key_len, sizeof key_len}};
    CK_MECHANISM generic = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE other;
    CHECK_RV(p11->C_GenerateKey(s, &generic, gen, 5, &other), CKR_OK);
    CHECK_RV(p11->C_DestroyObject(s, key), CKR_OK);
    CHECK_RV(unwrap_with_template(p11, s, other, blob, len, &again), CKR_WRAPPED_KEY_INVALID);
    CHECK_RV(unwrap_with_template(p11, s, wk, blob, len, &key), CKR_OK);
    if (leave_unwrapped) /* exit without deleting it, nor C_Finalize */
        exit(0);
    CHECK_RV(p11->C_DestroyObject(s, key), CKR_OK);
    finish(p11, s);
}

static void test_wrap_round_trip(void **state)
{
    (void)state;
    char counts[512], env_counts[600];
    const char *env[3] = {NULL, personality, NULL};
    with_counts(env_counts, sizeof env_counts, "yh-wrap", counts, sizeof counts, env);
    bool leave = false;
    assert_int_equal(run_scenario(env, wrap_round_trip, &leave), 0);
    json_t *root = load_counts(counts);
    json_t *yh = yh_counts(root);
    assert_int_equal(count_of(yh, "objects_unwrapped"), 2);
    assert_int_equal(count_of(yh, "unwrapped_left"), 0);
    assert_int_equal(count_of(yh, "objects_left"), 1);
    json_decref(root);

    /* The counts show an unwrapped key left behind, even without C_Finalize. */
    leave = true;
    assert_int_equal(run_scenario(env, wrap_round_trip, &leave), 0);
    root = load_counts(counts);
    assert_false(finalized_flag(root));
    yh = yh_counts(root);
    assert_int_equal(count_of(yh, "unwrapped_left"), 1);
    assert_int_equal(count_of(yh, "objects_left"), 4); /* auth, 2 wrap keys, the key */
    json_decref(root);
}

/* ---- storage: 256 objects, 1024 pages of 126 bytes ------------------------------ */

static void object_limit(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CK_SESSION_HANDLE s = yh_open_logged_in(p11);
    empty_token(p11, s);
    /* With the authentication key, 255 more objects fill the 256 records. */
    for (int i = 0; i < 255; i++)
        create_data(p11, s, "small", 1, CKR_OK);
    create_data(p11, s, "one-too-many", 1, CKR_DEVICE_MEMORY);
    CHECK(count_objects_labelled(p11, s, "one-too-many") == 0);
    finish(p11, s);
}

static void page_limit(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CK_SESSION_HANDLE s = yh_open_logged_in(p11);
    empty_token(p11, s);
    /* 1 page for the authentication key + 68 x 15 pages = 1021 of 1024. */
    CK_OBJECT_HANDLE last = CK_INVALID_HANDLE;
    for (int i = 0; i < 68; i++)
        last = create_data(p11, s, "15-pages", 15 * 126, CKR_OK);
    create_data(p11, s, "15-pages", 14 * 126 + 1, CKR_DEVICE_MEMORY);
    create_data(p11, s, "3-pages", 3 * 126, CKR_OK);
    create_data(p11, s, "1-page", 1, CKR_DEVICE_MEMORY);
    /* 14 pages free: an RSA-4096 key (15 pages) does not fit, RSA-2048 (8) does. */
    CHECK_RV(p11->C_DestroyObject(s, last), CKR_OK);
    create_data(p11, s, "1-page", 1, CKR_OK);
    generate_signing_key(p11, s, 4096, CKR_DEVICE_MEMORY);
    generate_signing_key(p11, s, 2048, CKR_OK);
    finish(p11, s);
}

static void test_storage_limits(void **state)
{
    (void)state;
    char counts[512], env_counts[600];
    const char *env[3] = {NULL, personality, NULL};
    with_counts(env_counts, sizeof env_counts, "yh-objects", counts, sizeof counts, env);
    assert_int_equal(run_scenario(env, object_limit, NULL), 0);
    json_t *root = load_counts(counts);
    assert_int_equal(count_of(yh_counts(root), "storage_refused"), 1);
    json_decref(root);
    assert_int_equal(run_scenario(env, page_limit, NULL), 0);
    root = load_counts(counts);
    assert_int_equal(count_of(yh_counts(root), "storage_refused"), 3);
    json_decref(root);
}

/* ---- sessions: 16, idle ones closed ------------------------------------------------- */

static void seventeen_sessions(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CHECK_RV(p11->C_Initialize(&init_args), CKR_OK);
    CK_SLOT_ID slot = token_slot(p11);
    for (int i = 0; i < 16; i++)
        open_session(p11, slot);
    CK_SESSION_HANDLE extra;
    CHECK_RV(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &extra), CKR_SESSION_COUNT);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

/* A logged-in session left idle is closed; its objects stay (they are
 * all persistent). */
static void idle_close(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CK_SESSION_HANDLE idle = yh_open_logged_in(p11);
    CK_SESSION_HANDLE busy = open_session(p11, token_slot(p11));
    create_data(p11, idle, "outlives-session", 4, CKR_OK);
    CK_SESSION_INFO si;
    for (int i = 0; i < 40; i++) { /* 1 s, busy used every 25 ms */
        sleep_ms(25);
        CHECK_RV(p11->C_GetSessionInfo(busy, &si), CKR_OK);
    }
    CHECK_RV(p11->C_GetSessionInfo(idle, &si), CKR_SESSION_HANDLE_INVALID);
    CHECK(count_objects_labelled(p11, busy, "outlives-session") == 1);
    finish(p11, busy);
}

static void test_sessions(void **state)
{
    (void)state;
    char counts[512], env_counts[600];
    const char *env[4] = {NULL, personality, NULL, NULL};
    with_counts(env_counts, sizeof env_counts, "yh-sessions", counts, sizeof counts, env);
    assert_int_equal(run_scenario(env, seventeen_sessions, NULL), 0);
    json_t *root = load_counts(counts);
    assert_int_equal(count_of(root, "sessions_refused"), 1);
    assert_int_equal(count_of(root, "max_sessions_open"), 16);
    json_decref(root);

    env[2] = "HSMSIGN_SHIM_IDLE_TIMEOUT_MS=500"; /* the test's stand-in for 30 s */
    assert_int_equal(run_scenario(env, idle_close, NULL), 0);
    root = load_counts(counts);
    assert_int_equal(count_of(root, "sessions_expired"), 1);
    json_decref(root);
}

/* ---- the personality off: plain forwarding --------------------------------------- */

static void plain_token(CK_FUNCTION_LIST *p11, const void *arg)
{
    (void)arg;
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK); /* no connector needed */
    CK_TOKEN_INFO ti;
    CHECK_RV(p11->C_GetTokenInfo(token_slot(p11), &ti), CKR_OK);
    CHECK(memcmp(ti.manufacturerID, "SoftHSM", 7) == 0);
    CK_MECHANISM_INFO mi;
    CHECK_RV(p11->C_GetMechanismInfo(token_slot(p11), CKM_AES_KEY_WRAP_PAD, &mi), CKR_OK);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
}

static void test_without_personality(void **state)
{
    (void)state;
    assert_int_equal(run_scenario(NULL, plain_token, NULL), 0);
    const char *bad[] = {"HSMSIGN_SHIM_PERSONALITY=yubihsm3", NULL};
    struct init_case any = {CONNECTOR, CKR_GENERAL_ERROR};
    assert_int_equal(run_scenario(bad, initialize_with, &any), 0);
    const char *bad_fw[] = {personality, "HSMSIGN_SHIM_YUBIHSM_FIRMWARE=2.4", NULL};
    assert_int_equal(run_scenario(bad_fw, initialize_with, &any), 0);
}

/* The storage tests create some 350 token objects; SoftHSM syncs each
 * object file, about 50 ms on a disk and nothing on tmpfs. So the token
 * goes on /dev/shm when the caller did not choose a TMPDIR. */
static int setup(void **state)
{
    (void)state;
    if (getenv("TMPDIR") == NULL && access("/dev/shm", W_OK) == 0)
        setenv("TMPDIR", "/dev/shm", 1);
    return create_token_with_pin(YH_PASSWORD);
}

int main(void)
{
    if (getenv("HSMSIGN_P11SHIM") == NULL || getenv("HSMSIGN_SOFTHSM_MODULE") == NULL) {
        fprintf(stderr, "HSMSIGN_P11SHIM and HSMSIGN_SOFTHSM_MODULE must be set (meson test)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connector_configuration_required),
        cmocka_unit_test(test_token_identity_and_firmware),
        cmocka_unit_test(test_mechanisms_offer_only_the_yubico_wrap),
        cmocka_unit_test(test_pin_is_auth_key_id_and_password),
        cmocka_unit_test(test_objects_are_persistent),
        cmocka_unit_test(test_wrap_round_trip),
        cmocka_unit_test(test_storage_limits),
        cmocka_unit_test(test_sessions),
        cmocka_unit_test(test_without_personality),
    };
    return cmocka_run_group_tests(tests, setup, remove_token);
}
