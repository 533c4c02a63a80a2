/* Token administration for the ceremonies: finding out whether a token is
 * blank, taking a blank token over with new SO and user PINs, and (on
 * SoftHSM only) erasing a token that is in use.
 *
 * "Blank" means one of two states, both without any key material:
 *   - absent: no initialized token matches; a free slot will be
 *     initialized (C_InitToken) with the label the spec names;
 *   - fresh: initialized, but its user PIN was never set (C_InitToken
 *     without C_InitPIN), so no user object can exist. Taking it over
 *     needs its current SO PIN.
 * A token whose user PIN is set may hold keys and is "in use". */
#ifndef HSMSIGN_P11_ADMIN_H
#define HSMSIGN_P11_ADMIN_H

#include <stdbool.h>

#include "p11/p11.h"

typedef enum hs_token_state {
    HS_TOKEN_ABSENT,
    HS_TOKEN_FRESH,
    HS_TOKEN_IN_USE,
} hs_token_state;

const char *hs_token_state_name(hs_token_state s);

/* The token label a spec names: the token= attribute of a "pkcs11:" URI,
 * or the spec itself when it is a plain label. Fails when a URI names no
 * label (a blank token could not be found again after initializing). */
hs_result hs_p11_spec_label(const char *spec, char *label, size_t cap, hs_error *e) HS_MUST_CHECK;

/* Classifies the token spec names. On return no token is selected in p.
 * info is filled for FRESH and IN_USE (label, serial, manufacturer). */
hs_result hs_p11_token_probe(hs_p11 *p, const char *spec, hs_token_state *state,
                             hs_p11_token_info *info, hs_error *e) HS_MUST_CHECK;

/* True when the token is SoftHSMv2's, where erasing a token is a test and
 * demo convenience rather than the loss of a real device's keys. */
bool hs_p11_token_is_softhsm(const hs_p11_token_info *info);

/* Brings a blank token to a known state: ABSENT is initialized with the
 * spec's label and so_pin; FRESH gets its SO PIN changed from
 * current_so_pin to so_pin (refused if the SO sees any object on it);
 * then the user PIN is set. A FRESH token is first re-initialized
 * (C_InitToken with current_so_pin), destroying every object on it, those
 * hidden from the SO included; with erase (SoftHSM only) an IN_USE token
 * too. A token without C_InitToken is refused (reset it with its vendor's
 * tool). The new SO PIN is confirmed by a login with it before the user
 * PIN is set. On success the token is selected in p and nobody is logged
 * in. */
hs_result hs_p11_take_over_token(hs_p11 *p, const char *spec, hs_token_state state,
                                 const char *current_so_pin, const char *so_pin,
                                 const char *user_pin, bool erase, hs_error *e) HS_MUST_CHECK;

/* What C_GetTokenInfo says beyond hs_p11_token_info: the firmware and
 * hardware versions ("2.6") for the transcript, and the PIN length limits. */
typedef struct hs_p11_token_details {
    char firmware[16], hardware[16];
    unsigned long min_pin, max_pin;
} hs_p11_token_details;

/* For the selected token. */
hs_result hs_p11_read_token_details(hs_p11 *p, hs_p11_token_details *d, hs_error *e) HS_MUST_CHECK;

/* Logs in as SO with so_pin on the selected token and out again: proves a
 * credential before anything is changed. */
hs_result hs_p11_check_so_pin(hs_p11 *p, const char *so_pin, hs_error *e) HS_MUST_CHECK;

/* Proves the selected token holds exactly what the ceremony made: logged
 * in as the user, it sees expect objects, each labelled with one of
 * labels; logged in as the SO (no user session may be logged in), it sees
 * exactly the public ones among them. HS_E_VERIFY names an object or a
 * count that differs. */
hs_result hs_p11_prove_contents(hs_p11 *p, const char *so_pin, const char *user_pin,
                                const char *const *labels, size_t n_labels, size_t expect,
                                hs_error *e) HS_MUST_CHECK;

/* Logs in as the user with a PIN held in memory (the ceremony made it):
 * a copy is kept in locked memory for re-login, as hs_p11_login does. */
hs_result hs_p11_login_with_pin(hs_p11 *p, const char *pin, hs_error *e) HS_MUST_CHECK;

/* Generates a random PIN of len characters (8..64) from an alphabet
 * without look-alike characters into pin (len+1 bytes). */
hs_result hs_p11_random_pin(char *pin, size_t len, hs_error *e) HS_MUST_CHECK;

#endif
