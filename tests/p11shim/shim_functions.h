/* The PKCS#11 v2.40 entry points the shim forwards, in CK_FUNCTION_LIST
 * order. C_GetFunctionList is deliberately absent: the shim answers it
 * itself, so it is never counted, delayed or failed.
 *
 * X-macro: the includer defines X(name) and expands SHIM_FUNCTIONS(X). */
#ifndef HSMSIGN_P11SHIM_FUNCTIONS_H
#define HSMSIGN_P11SHIM_FUNCTIONS_H

#define SHIM_FUNCTIONS(X) \
    X(Initialize) X(Finalize) X(GetInfo) \
    X(GetSlotList) X(GetSlotInfo) X(GetTokenInfo) X(GetMechanismList) \
    X(GetMechanismInfo) X(InitToken) X(InitPIN) X(SetPIN) \
    X(OpenSession) X(CloseSession) X(CloseAllSessions) X(GetSessionInfo) \
    X(GetOperationState) X(SetOperationState) X(Login) X(Logout) \
    X(CreateObject) X(CopyObject) X(DestroyObject) X(GetObjectSize) \
    X(GetAttributeValue) X(SetAttributeValue) \
    X(FindObjectsInit) X(FindObjects) X(FindObjectsFinal) \
    X(EncryptInit) X(Encrypt) X(EncryptUpdate) X(EncryptFinal) \
    X(DecryptInit) X(Decrypt) X(DecryptUpdate) X(DecryptFinal) \
    X(DigestInit) X(Digest) X(DigestUpdate) X(DigestKey) X(DigestFinal) \
    X(SignInit) X(Sign) X(SignUpdate) X(SignFinal) \
    X(SignRecoverInit) X(SignRecover) \
    X(VerifyInit) X(Verify) X(VerifyUpdate) X(VerifyFinal) \
    X(VerifyRecoverInit) X(VerifyRecover) \
    X(DigestEncryptUpdate) X(DecryptDigestUpdate) \
    X(SignEncryptUpdate) X(DecryptVerifyUpdate) \
    X(GenerateKey) X(GenerateKeyPair) X(WrapKey) X(UnwrapKey) X(DeriveKey) \
    X(SeedRandom) X(GenerateRandom) X(GetFunctionStatus) X(CancelFunction) \
    X(WaitForSlotEvent)

#endif
