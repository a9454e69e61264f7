using System.Buffers.Binary;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using ActorQuery.Host.Cli;
using ActorQuery.Host.Serve;
using ActorQuery.Host.Tests;

namespace ActorQuery.Bench.Tests;

/// <summary>
/// The bench tool's <c>http</c> and <c>soak</c> against the shipped server (real Kestrel on 127.0.0.1, real actors and engine,
/// the default model), at a tiny size: what they count and the files they write. No timing is asserted.
/// </summary>
[Collection(ServeCollection.Name)]
public sealed partial class LoadGeneratorServerTests : IAsyncLifetime
{
    private DefaultModelServer _server = null!;
    private string _url = null!;
    private string _out = null!;

    public async Task InitializeAsync()
    {
        _out = Directory.CreateTempSubdirectory("aq-load-").FullName;
        _server = await DefaultModelServer.StartAsync(["--log-folder", Path.Combine(_out, "logs"), "--max-in-flight", "4"]);
        _url = _server.Url;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_out, recursive: true);
    }

    [Fact]
    public async Task Bench_http_answers_every_request_and_writes_the_table_the_plot_and_the_json()
    {
        var output = new StringWriter();
        int code = await HttpBenchCommand.RunAsync(["--url", _url, "--model", DefaultModelServer.ModelFolder, "--dtype", "float32", "--device", "cpu",
            "--concurrency", "1,2", "--requests-per-stream", "2", "--input-tokens", "16", "--output-tokens", "8", "--warmup", "1",
            "--engine-repeats", "1", "--out", _out], output);
        Assert.Equal(0, code);

        var json = Directory.GetFiles(_out, "http-bench-*.json").Single();
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var levels = doc.RootElement.GetProperty("levels").EnumerateArray().ToList();
        Assert.Equal([1, 2], levels.Select(l => l.GetProperty("concurrency").GetInt32()));
        var two = levels[1];
        Assert.Equal(4, two.GetProperty("requests").GetInt32());            // 2 streams × 2 requests each
        Assert.Equal(4, two.GetProperty("answered").GetInt32());
        Assert.Equal(0, two.GetProperty("errors").GetInt32());
        Assert.Equal(32, two.GetProperty("output_tokens").GetInt64());      // ignore_eos: exactly max_tokens each
        // The default model meets the bench's prose prompt with end-of-text tokens, which carry no text, so its
        // streams send no text chunk and TTFT/ITL are NaN here (a real model's are numbers); LoadStatsTests
        // cover that arithmetic. What must hold is that every field is written.
        Assert.True(two.TryGetProperty("ttft_p50_ms", out _) && two.TryGetProperty("itl_p99_ms", out _));
        Assert.True(doc.RootElement.GetProperty("engine").GetProperty("end_to_end_tokens_per_second").GetDouble() > 0);
        // The single request that ran in turn with the engine run: 8 tokens over its time.
        Assert.True(doc.RootElement.GetProperty("engine").GetProperty("http_tokens_per_second").GetDouble() > 0);

        var markdown = File.ReadAllText(Path.ChangeExtension(json, ".md"));
        Assert.Matches(@"\| 2 \| 4 \| 0 \| [0-9.]+ \|", markdown);
        Assert.Contains("HTTP single stream ≥ 90% of the engine alone (in turns):", markdown);
        Assert.Contains(Path.GetFileName(Path.ChangeExtension(json, ".png")), markdown);

        var png = File.ReadAllBytes(Path.ChangeExtension(json, ".png"));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A], png[..8]);
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        Assert.Equal((1500, 500), (BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20))));
        Assert.True(png.Length > 10_000);                                   // three drawn panels, not an empty canvas
    }

    [Fact]
    public async Task Soak_accounts_for_every_request_with_client_disconnects_and_writes_its_result()
    {
        var output = new StringWriter();
        int code = await SoakCommand.RunAsync(["--url", _url, "--requests", "16", "--warmup", "4", "--concurrency", "4",
            "--max-tokens", "12", "--disconnect-fraction", "0.5", "--idle-seconds", "0", "--rss-tolerance", "1",
            "--server-pid", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), "--out", _out], output);

        var markdown = File.ReadAllText(Directory.GetFiles(_out, "soak-*.md").Single());
        var row = CountsRow().Match(markdown);
        Assert.True(row.Success, markdown);
        int[] n = Enumerable.Range(1, 6).Select(i => int.Parse(row.Groups[i].Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var (answered, cancelled, refused, errored, unanswered, total) = (n[0], n[1], n[2], n[3], n[4], n[5]);
        Assert.Equal(16, total);
        Assert.Equal((0, 0), (errored, unanswered));
        Assert.Equal(16, answered + cancelled + refused);
        Assert.True(cancelled > 0, markdown);                               // some clients really hung up mid-request
        Assert.Contains("Server idle afterwards (nothing in flight or queued): **yes**", markdown);
        Assert.Equal(0, code);                                              // the RSS check is loose here: the test host is the server
    }

    [Fact]
    public async Task Bad_options_and_a_missing_server_are_one_line_errors()
    {
        var e = await Assert.ThrowsAsync<CliException>(() => HttpBenchCommand.RunAsync(["--concurrency", "1,0", "--url", _url], TextWriter.Null));
        Assert.Contains("--concurrency", e.Message);
        e = await Assert.ThrowsAsync<CliException>(() => SoakCommand.RunAsync(["--url", "ftp://x"], TextWriter.Null));
        Assert.Contains("--url", e.Message);
        e = await Assert.ThrowsAsync<CliException>(() => SoakCommand.RunAsync(["--url", "http://127.0.0.1:1"], TextWriter.Null));
        Assert.Contains("no server at http://127.0.0.1:1", e.Message);
    }

    [GeneratedRegex(@"\| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|")]
    private static partial Regex CountsRow();
}
