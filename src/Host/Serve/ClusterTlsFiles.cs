using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ActorQuery.Actors.Cluster;

namespace ActorQuery.Host.Serve;

/// <summary>
/// The cluster TLS settings (ActorQuery:Cluster:Tls*) read from their files: this node's certificate from a PKCS#12
/// (.pfx) file with its private key, and the cluster CA's certificate (PEM or DER). <see cref="Why"/> checks them at
/// start, with the other settings, so that a node that the cluster would refuse does not start at all (exit code 2).
/// </summary>
public static class ClusterTlsFiles
{
    /// <summary>Null: TLS is off (no certificate file).</summary>
    public static ClusterTlsOptions? Load(ClusterServeOptions cluster)
    {
        if (cluster.TlsCertificate.Length == 0) return null;
        var certificate = X509CertificateLoader.LoadPkcs12FromFile(cluster.TlsCertificate, Password(cluster.TlsPassword));
        var ca = cluster.TlsCa.Length == 0 ? null : X509CertificateLoader.LoadCertificateFromFile(cluster.TlsCa);
        return new ClusterTlsOptions(certificate, ca);
    }

    /// <summary>Why the files cannot serve as this node's cluster TLS, or null.</summary>
    public static string? Why(string certificatePath, string password, string caPath)
    {
        if (certificatePath.Length == 0) return caPath.Length == 0 ? null : "is empty while Cluster:TlsCa is set (set both, or neither)";
        if (!File.Exists(certificatePath)) return $"'{certificatePath}' does not exist";
        X509Certificate2 certificate;
        try { certificate = X509CertificateLoader.LoadPkcs12FromFile(certificatePath, Password(password)); }
        catch (CryptographicException e) { return $"'{certificatePath}' is not a PKCS#12 (.pfx) file that this password opens: {e.Message}"; }
        using (certificate)
        {
            if (!certificate.HasPrivateKey) return $"'{certificatePath}' holds no private key";
            if (certificate.NotAfter < DateTime.Now) return $"'{certificatePath}': [{certificate.Subject}] expired on {certificate.NotAfter:u}";
            if (caPath.Length == 0) return null;
            if (!File.Exists(caPath)) return $"(Cluster:TlsCa) '{caPath}' does not exist";
            X509Certificate2 ca;
            try { ca = X509CertificateLoader.LoadCertificateFromFile(caPath); }
            catch (CryptographicException e) { return $"(Cluster:TlsCa) '{caPath}' is not a PEM or DER certificate: {e.Message}"; }
            using (ca)
                return ClusterTls.WhyNotFrom(ca, certificate) is { } why
                    ? $"'{certificatePath}': [{certificate.Subject}] is not issued by the cluster CA [{ca.Subject}] of '{caPath}' ({why}); the other nodes would refuse it"
                    : null;
        }
    }

    private static string? Password(string password) => password.Length == 0 ? null : password;
}
