using ActorQuery.Host.Serve;
using Microsoft.Extensions.Configuration;

namespace ActorQuery.Host.Tests;

/// <summary>
/// The cluster TLS settings are checked at start with the others: a node whose certificate the cluster would refuse,
/// that cannot open its file, or whose seed addresses use the other scheme does not start (exit code 2, one line).
/// </summary>
[Collection(ServeCollection.Name)]
public sealed class ClusterTlsSettingsTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("aq-tls-").FullName;
    private readonly string _ca;
    private readonly string _node;
    private readonly string _selfSigned;

    public ClusterTlsSettingsTests()
    {
        using var ca = TestCertificates.Ca("test-cluster-ca");
        _ca = TestCertificates.WritePem(ca, _folder, "ca.crt");
        using var node = TestCertificates.Node("node-0", ca);
        _node = TestCertificates.WritePfx(node, _folder, "node-0.pfx", "secret");
        using var self = TestCertificates.Node("intruder", ca: null);
        _selfSigned = TestCertificates.WritePfx(self, _folder, "intruder.pfx", "secret");
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static ServeOptions Options(params (string Key, string Value)[] settings) =>
        ServeOptions.From(new ConfigurationBuilder()
            .AddInMemoryCollection(settings.ToDictionary(s => $"ActorQuery:Cluster:{s.Key}", s => (string?)s.Value)).Build());

    private static string Refusal(params (string Key, string Value)[] settings) =>
        Assert.Throws<OptionsException>(() => Options(settings)).Message;

    [Fact]
    public void A_certificate_from_the_cluster_CA_loads_with_its_key_and_TLS_seed_addresses()
    {
        var options = Options(("TlsCertificate", _node), ("TlsPassword", "secret"), ("TlsCa", _ca),
            ("SeedNodes", "akka.ssl.tcp://actorquery@10.0.0.5:4053"));
        var tls = ClusterTlsFiles.Load(options.Cluster)!;
        Assert.True(tls.Certificate.HasPrivateKey);
        Assert.Equal("CN=node-0", tls.Certificate.Subject);
        Assert.Equal("CN=test-cluster-ca", tls.ClusterCa!.Subject);
        Assert.Null(ClusterTlsFiles.Load(Options().Cluster)); // no certificate: plain TCP
    }

    [Fact]
    public void A_self_signed_certificate_is_refused_at_start_naming_the_CA()
    {
        var message = Refusal(("TlsCertificate", _selfSigned), ("TlsPassword", "secret"), ("TlsCa", _ca));
        Assert.Contains("ActorQuery:Cluster:TlsCertificate", message);
        Assert.Contains("[CN=intruder] is not issued by the cluster CA [CN=test-cluster-ca]", message);
    }

    [Fact]
    public void A_wrong_password_or_a_missing_file_is_refused_at_start()
    {
        Assert.Contains("that this password opens", Refusal(("TlsCertificate", _node), ("TlsPassword", "wrong"), ("TlsCa", _ca)));
        Assert.Contains("does not exist", Refusal(("TlsCertificate", Path.Combine(_folder, "none.pfx"))));
        Assert.Contains("does not exist", Refusal(("TlsCertificate", _node), ("TlsPassword", "secret"), ("TlsCa", Path.Combine(_folder, "none.crt"))));
    }

    [Fact]
    public void Seed_addresses_must_use_the_scheme_of_this_nodes_remoting()
    {
        Assert.Contains("this node's remoting is akka.ssl.tcp://", Refusal(("TlsCertificate", _node), ("TlsPassword", "secret"), ("TlsCa", _ca),
            ("SeedNodes", "akka.tcp://actorquery@10.0.0.5:4053")));
        Assert.Contains("this node's remoting is akka.tcp://", Refusal(("SeedNodes", "akka.ssl.tcp://actorquery@10.0.0.5:4053")));
    }
}
