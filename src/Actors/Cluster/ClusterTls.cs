using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Akka.Event;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Akka.Remote.Transport.DotNetty;

namespace ActorQuery.Actors.Cluster;

/// <summary>
/// TLS of the cluster's remoting, with mutual authentication: this node presents <paramref name="Certificate"/> (with
/// its private key) on every connection, in and out, and accepts a peer only if the peer's certificate chains to
/// <paramref name="ClusterCa"/>. Null <paramref name="ClusterCa"/>: the peer's chain must end in a root of the
/// machine's trust store instead (Akka's own validation), for a cluster whose CA is installed there.
/// </summary>
public sealed record ClusterTlsOptions(X509Certificate2 Certificate, X509Certificate2? ClusterCa);

/// <summary>
/// Applies <see cref="ClusterTlsOptions"/> to Akka.Remote's DotNetty transport. Mutual authentication is always on: a
/// node that accepted connections without a client certificate would let any host that reaches its port join the
/// cluster, advertise a worker and receive prompts.
/// <para>
/// Akka.NET validates a peer's chain against the machine's trust store (<see cref="CertificateValidation.ValidateChain"/>),
/// which would trust every public CA as well, and would need the private CA installed on every node. With a cluster
/// CA given, <see cref="TrustOnly"/> replaces that check (through the transport's <c>CustomValidator</c> hook) with a
/// chain built against that one CA alone. Host names are not checked: nodes reach each other by IP, container or pod
/// names that a per-node certificate cannot list in advance; membership of the cluster is the CA's signature.
/// </para>
/// </summary>
public static class ClusterTls
{
    /// <summary>
    /// Turns TLS on for this node's remoting (addresses become <c>akka.ssl.tcp://</c>). The remoting itself (host,
    /// port) is configured by <c>WithRemoting</c> elsewhere; this adds only the TLS part to it.
    /// </summary>
    public static AkkaConfigurationBuilder WithClusterTls(this AkkaConfigurationBuilder builder, ClusterTlsOptions tls)
    {
        // A node whose own certificate is not from the cluster CA is refused by every other node, and only the others'
        // logs would say why: say it here too, once, at start (the Host refuses to start such a node at all).
        if (tls.ClusterCa is { } ca && WhyNotFrom(ca, tls.Certificate) is { } why)
            builder.AddStartup((system, _) => system.Log.Error(
                "cluster TLS: this node's certificate [{0}] is not from the cluster CA [{1}] ({2}): the other nodes will refuse it",
                tls.Certificate.Subject, ca.Subject, why));
        return builder.WithRemoting(new RemoteOptions
        {
            EnableSsl = true,
            Ssl = new SslOptions
            {
                X509Certificate = tls.Certificate,
                SuppressValidation = false,
                RequireMutualAuthentication = true,
                ValidateCertificateHostname = false,
                CustomValidator = tls.ClusterCa is { } clusterCa ? TrustOnly(clusterCa) : CertificateValidation.ValidateChain(),
            },
        });
    }

    /// <summary>
    /// Accepts a peer certificate whose chain ends in <paramref name="ca"/> and nowhere else (no system roots, no
    /// revocation lists: a throwaway cluster CA has none), and is within its validity. A refusal is logged with the
    /// peer, its certificate and why, on the node that refuses; the handshake then fails on both sides.
    /// </summary>
    public static CertificateValidationCallback TrustOnly(X509Certificate2 ca) =>
        (certificate, presented, peer, _, log) =>
        {
            if (certificate is null)
            {
                log.Error("cluster TLS: refused {0}: it presented no certificate (every node needs one issued by the cluster CA [{1}])", peer, ca.Subject);
                return false;
            }
            // Intermediates the peer sent along (a CA that signs node certificates through an intermediate).
            var intermediates = presented?.ChainElements.Select(e => e.Certificate)
                .Where(c => !c.RawDataMemory.Span.SequenceEqual(certificate.RawDataMemory.Span)).ToList() ?? [];
            if (WhyNotFrom(ca, certificate, intermediates) is not { } why) return true;
            log.Error("cluster TLS: refused {0}: its certificate [{1}] issued by [{2}] is not from the cluster CA [{3}] ({4})",
                peer, certificate.Subject, certificate.Issuer, ca.Subject, why);
            return false;
        };

    /// <summary>Null when <paramref name="certificate"/> chains to <paramref name="ca"/> alone and is valid now; else why not.</summary>
    public static string? WhyNotFrom(X509Certificate2 ca, X509Certificate2 certificate, IEnumerable<X509Certificate2>? intermediates = null)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        foreach (var c in intermediates ?? []) chain.ChainPolicy.ExtraStore.Add(c);
        if (chain.Build(certificate)) return null;
        var why = string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
        return why.Length > 0 ? why : "its chain does not end in the cluster CA";
    }
}
