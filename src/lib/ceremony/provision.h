/* The provisioning ceremony (docs/ceremony.md): two blank tokens get fresh
 * random SO and user PINs (age-encrypted to the admin and operator roles),
 * one wrap key made in locked host memory, split k-of-n into shares
 * age-encrypted to their holders and imported into both tokens, an audit
 * key generated in the primary, and a transcript signed by that key.
 * Nothing secret is written in plaintext; every output is written
 * atomically into an empty ceremony directory. */
#ifndef HSMSIGN_CEREMONY_PROVISION_H
#define HSMSIGN_CEREMONY_PROVISION_H

#include <stdbool.h>

#include "ceremony/config.h"
#include "ceremony/transcript.h"

/* Told each step as it starts, so a person can follow the ceremony. */
typedef void (*hs_ceremony_step_fn)(void *ctx, const char *what);

typedef struct hs_provision_options {
    const char *module;             /* PKCS#11 module, NULL: the default */
    const char *module_init_args;   /* its C_Initialize configuration, NULL: none */
    const char *out_dir;            /* must be empty or absent */
    const char *audit_dir;          /* the audit log the operations are recorded in */
    bool force_reset;               /* erase an in-use SoftHSM token */
    const char *current_so_pin[2];  /* primary, backup: needed for initialized tokens */
    bool allow_unlocked_memory;     /* go on when mlock fails (recorded in the transcript) */
    const char *profile;            /* token profile recorded in the transcript; NULL: "wrapped" */
    hs_ceremony_step_fn step;
    void *step_ctx;
} hs_provision_options;

/* Names of the files in the ceremony directory. */
#define HS_CEREMONY_TRANSCRIPT_JSON "transcript.json"
#define HS_CEREMONY_TRANSCRIPT_TEXT "transcript.txt"
#define HS_CEREMONY_AUDIT_PEM "audit-key.pem"

/* Runs the ceremony. *out (hs_transcript_free) is the transcript written. */
hs_result hs_ceremony_provision(const hs_ceremony_config *cfg, const hs_provision_options *o,
                                hs_transcript **out, hs_error *e) HS_MUST_CHECK;

/* SHA-256 of the running executable (/proc/self/exe), for the transcript. */
hs_result hs_ceremony_self_sha256(uint8_t out[32], hs_error *e) HS_MUST_CHECK;

#endif
