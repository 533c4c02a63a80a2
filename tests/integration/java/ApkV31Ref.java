// Reference signer and verifier for tests/integration/test_apk_v31.sh,
// built against AOSP apksig's sources (../shared/releasetools/signapk-aosp,
// apksig udc-release): apksig 33+ is the reference for v3.1 signing, which
// Debian's apksigner 31 predates.
//
//   sign IN OUT LINEAGE ROTATION_MIN_SDK DEV(true|false) V1 V2 V3
//        OLD.pk8 OLD.crt NEW.pk8 NEW.crt [v4]
//     ApkSigner with the old signer (v1 name CERT) and the new one, the
//     lineage, setMinSdkVersionForRotation (not called for "default") and
//     setRotationTargetsDevRelease. OLD.pk8 "-": the new signer alone.
//     v4: also OUT.idsig.
//   verify APK MIN_SDK [MAX_SDK]
//     ApkVerifier for that platform range (with APK.idsig when it exists);
//     prints "verified", whether v3.1 verified and the signers' subjects,
//     or the errors (exit 1).
import com.android.apksig.ApkSigner;
import com.android.apksig.ApkVerifier;
import com.android.apksig.SigningCertificateLineage;

import java.io.File;
import java.io.FileInputStream;
import java.nio.file.Files;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

public final class ApkV31Ref {
    private static PrivateKey key(String path) throws Exception {
        PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(Files.readAllBytes(new File(path).toPath()));
        try {
            return KeyFactory.getInstance("RSA").generatePrivate(spec);
        } catch (java.security.spec.InvalidKeySpecException notRsa) {
            return KeyFactory.getInstance("EC").generatePrivate(spec);
        }
    }

    private static X509Certificate cert(String path) throws Exception {
        try (FileInputStream in = new FileInputStream(path)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    private static ApkSigner.SignerConfig signer(String name, String pk8, String crt)
            throws Exception {
        return new ApkSigner.SignerConfig.Builder(name, key(pk8),
                Collections.singletonList(cert(crt))).build();
    }

    private static void sign(String[] a) throws Exception {
        List<ApkSigner.SignerConfig> signers = new ArrayList<>();
        if (!a[9].equals("-"))
            signers.add(signer("CERT", a[9], a[10]));
        signers.add(signer("NEW", a[11], a[12]));
        ApkSigner.Builder b = new ApkSigner.Builder(signers);
        if (!a[4].equals("default"))
            b.setMinSdkVersionForRotation(Integer.parseInt(a[4]));
        b.setInputApk(new File(a[1]))
                .setOutputApk(new File(a[2]))
                .setSigningCertificateLineage(SigningCertificateLineage.readFromFile(new File(a[3])))
                .setRotationTargetsDevRelease(Boolean.parseBoolean(a[5]))
                .setV1SigningEnabled(Boolean.parseBoolean(a[6]))
                .setV2SigningEnabled(Boolean.parseBoolean(a[7]))
                .setV3SigningEnabled(Boolean.parseBoolean(a[8]))
                .setV4SigningEnabled(a.length > 13 && a[13].equals("v4"))
                .setV4SignatureOutputFile(new File(a[2] + ".idsig"))
                .build()
                .sign();
    }

    private static int verify(String[] a) throws Exception {
        ApkVerifier.Builder b = new ApkVerifier.Builder(new File(a[1]))
                .setMinCheckedPlatformVersion(Integer.parseInt(a[2]));
        if (a.length > 3)
            b.setMaxCheckedPlatformVersion(Integer.parseInt(a[3]));
        File idsig = new File(a[1] + ".idsig");
        if (idsig.exists())
            b.setV4SignatureFile(idsig);
        ApkVerifier.Result r = b.build().verify();
        for (ApkVerifier.IssueWithParams i : r.getErrors())
            System.out.println("ERROR: " + i);
        for (ApkVerifier.Result.V3SchemeSignerInfo s : r.getV31SchemeSigners())
            for (ApkVerifier.IssueWithParams i : s.getErrors())
                System.out.println("ERROR: v3.1: " + i);
        for (ApkVerifier.Result.V3SchemeSignerInfo s : r.getV3SchemeSigners())
            for (ApkVerifier.IssueWithParams i : s.getErrors())
                System.out.println("ERROR: v3: " + i);
        if (!r.isVerified())
            return 1;
        System.out.println("verified");
        System.out.println("v3.1 " + r.isVerifiedUsingV31Scheme());
        System.out.println("v3 " + r.isVerifiedUsingV3Scheme());
        System.out.println("v4 " + r.isVerifiedUsingV4Scheme());
        for (X509Certificate c : r.getSignerCertificates())
            System.out.println("signer " + c.getSubjectX500Principal().getName());
        return 0;
    }

    public static void main(String[] a) throws Exception {
        if (a.length >= 13 && a[0].equals("sign")) {
            sign(a);
        } else if (a.length >= 3 && a[0].equals("verify")) {
            System.exit(verify(a));
        } else {
            System.err.println("usage: ApkV31Ref sign ... | verify APK MIN_SDK [MAX_SDK]");
            System.exit(2);
        }
    }
}
