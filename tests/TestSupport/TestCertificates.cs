using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ActorQuery.TestSupport;

/// <summary>
/// Throwaway certificates made in memory with <see cref="CertificateRequest"/>, as scripts/cluster-local.sh makes them
/// with openssl: a CA, node certificates it signs, and self-signed ones it does not. ECDSA P-256 keys: quick to make.
/// Each certificate goes through PKCS#12 and back, so that it carries its key as a loaded .pfx file does.
/// </summary>
public static class TestCertificates
{
    public static X509Certificate2 Ca(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return Reload(request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-10), DateTimeOffset.UtcNow.AddDays(2)));
    }

    /// <summary>A node certificate signed by <paramref name="ca"/>; with none, a self-signed one (no cluster's).</summary>
    public static X509Certificate2 Node(string name, X509Certificate2? ca)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        // Each node is both TLS server (inbound connections) and TLS client (outbound ones).
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        var notBefore = DateTimeOffset.UtcNow.AddMinutes(-5);
        var notAfter = DateTimeOffset.UtcNow.AddDays(1);
        if (ca is null) return Reload(request.CreateSelfSigned(notBefore, notAfter));
        using var signed = request.Create(ca, notBefore, notAfter, RandomNumberGenerator.GetBytes(16));
        return Reload(signed.CopyWithPrivateKey(key));
    }

    /// <summary>Writes <paramref name="certificate"/> as a PKCS#12 file with its key under <paramref name="password"/>.</summary>
    public static string WritePfx(X509Certificate2 certificate, string folder, string name, string? password)
    {
        var path = Path.Combine(folder, name);
        File.WriteAllBytes(path, certificate.Export(X509ContentType.Pkcs12, password));
        return path;
    }

    /// <summary>Writes the certificate alone (no key) as PEM, as a CA's certificate is handed to the nodes.</summary>
    public static string WritePem(X509Certificate2 certificate, string folder, string name)
    {
        var path = Path.Combine(folder, name);
        File.WriteAllText(path, certificate.ExportCertificatePem());
        return path;
    }

    private static X509Certificate2 Reload(X509Certificate2 certificate)
    {
        using (certificate) return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }
}
