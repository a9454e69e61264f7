using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using ActorQuery.Host.Serve;
using Microsoft.Extensions.Configuration;

namespace ActorQuery.Host.Tests;

/// <summary>Without API keys the server listens on loopback only; with keys the shipped server wants them.</summary>
[Collection(ServeCollection.Name)]
public sealed class SecurityStartTests
{
    private static readonly string Server = Path.Combine(AppContext.BaseDirectory, "actorquery.dll");

    [Theory]
    [InlineData("http://0.0.0.0:8000")]
    [InlineData("http://*:8000")]
    [InlineData("http://127.0.0.1:8000;http://192.168.1.20:8000")]
    public async Task A_non_loopback_address_without_keys_is_refused_at_start_with_exit_code_2_and_one_line(string urls)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, WorkingDirectory = AppContext.BaseDirectory };
        foreach (var a in new[] { Server, "serve", "--urls", urls, "--log-folder", Directory.CreateTempSubdirectory("aq-auth-").FullName })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { await process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { process.Kill(entireProcessTree: true); throw; }
        string text = (await stderr).Trim();
        Assert.True(process.ExitCode == 2, $"exit code {process.ExitCode}; stderr: {text}");
        Assert.DoesNotContain('\n', text);
        Assert.Contains("listens beyond loopback and no API key is set", text);
        Assert.Contains("--allow-unauthenticated", text);
    }

    [Theory]
    [InlineData("http://localhost:8000;http://127.0.0.1:8001;http://[::1]:8002")]
    public void Loopback_addresses_need_no_key(string urls) => Options(["--urls", urls]);

    [Theory]
    [InlineData("--api-key", "a-key-of-sixteen-chars")]
    [InlineData("--allow-unauthenticated", null)]
    public void Any_address_is_served_with_a_key_or_allow_unauthenticated(string flag, string? value) =>
        Options(value is null ? ["--urls", "http://0.0.0.0:8000", flag] : ["--urls", "http://+:8000", flag, value]);

    [Fact]
    public void Api_keys_repeat_on_the_command_line_and_add_to_those_of_the_environment()
    {
        var keys = ServeCli.Parse(["--api-key", "first-key-0123456789", "--api-key", "second-key-0123456789"]);
        var config = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["ActorQuery:ApiKeys:0"] = "env-key-0123456789" })
            .AddInMemoryCollection(keys).Build();
        Assert.Equal(["env-key-0123456789", "first-key-0123456789", "second-key-0123456789"], ServeOptions.From(config).ApiKeys.Order());
        var e = Assert.Throws<OptionsException>(() => Options(["--api-key", "short"]));
        Assert.Contains("at least 16", e.Message);
        var file = Path.GetTempFileName();
        File.WriteAllText(file, "not a hash\n");
        Assert.Contains("line 1", Assert.Throws<OptionsException>(() => Options(["--api-key-file", file])).Message);
    }

    [Fact]
    public async Task The_default_model_server_with_a_key_refuses_requests_without_it_and_answers_with_it()
    {
        const string key = "serve-key-0123456789";
        await using var server = await DefaultModelServer.StartAsync(["--api-key", key]);
        const string chat = """{"messages": [{"role": "user", "content": "What is 37 + 58?"}], "temperature": 0}""";
        using (var none = await server.Http.PostAsync("/v1/chat/completions", new StringContent(chat, Encoding.UTF8, "application/json")))
            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent(chat, Encoding.UTF8, "application/json"), Headers = { Authorization = new AuthenticationHeaderValue("Bearer", key) },
        };
        using var answer = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Contains("95", await answer.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task A_client_that_sends_its_headers_too_slowly_is_cut_off_after_the_headers_timeout()
    {
        await using var server = await DefaultModelServer.StartAsync([], new() { ["ActorQuery:Http:RequestHeadersTimeout"] = "00:00:01" });
        var address = new Uri(server.Url);
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("GET /health/live HTTP/1.1\r\nHost: x\r\n")); // and never the blank line
        var clock = Stopwatch.StartNew();
        var buffer = new byte[1024];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        int read = await stream.ReadAsync(buffer, cts.Token); // Kestrel answers 408 and closes
        string answer = Encoding.ASCII.GetString(buffer, 0, read);
        Assert.True(read == 0 || answer.StartsWith("HTTP/1.1 408"), answer);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"cut off after {clock.Elapsed}");
        // A normal client is still served.
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task With_keys_on_the_server_still_reads_its_worker_processes_memory_over_their_keyed_loopback_api()
    {
        const string key = "serve-key-0123456789";
        await using var server = await DefaultModelServer.StartAsync(["--api-key", key]);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/memory") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", key) } };
        using var reply = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, reply.StatusCode);
        var processes = System.Text.Json.JsonDocument.Parse(await reply.Content.ReadAsStringAsync()).RootElement.GetProperty("worker_processes");
        Assert.True(processes.GetArrayLength() >= 1, processes.ToString());
        foreach (var p in processes.EnumerateArray())
        {
            Assert.True(p.GetProperty("error").ValueKind == System.Text.Json.JsonValueKind.Null, p.ToString());
            Assert.True(p.GetProperty("memory").TryGetProperty("summary", out _), p.ToString()); // the child's own /memory, not a 401
        }
    }

    private static ServeOptions Options(string[] args) =>
        ServeOptions.From(new ConfigurationBuilder().AddInMemoryCollection(ServeCli.Parse(args)).Build());
}
