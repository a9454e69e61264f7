using System.Runtime.CompilerServices;
using System.Text;
using Akka.Hosting;
using ActorQuery.Actors;
using ActorQuery.Api;
using ActorQuery.Inference.Tokenization;
using Microsoft.Extensions.DependencyInjection;

namespace ActorQuery.Host.Serve;

/// <summary>
/// Stand-in until the actors are wired in: the server runs (health, docs, metrics answer), readiness reports no
/// model ready, and every query is refused with 503 saying why. Not a model: it never generates anything.
/// </summary>
internal sealed class NotWiredBackend : IServeBackend
{
    private const string Why = "no model backend is wired into this build (see src/Host/Serve/ServeBackend.cs)";

    public void ConfigureServices(IServiceCollection services, ServeOptions options)
    {
        var tokenizer = new Utf8PlaceholderTokenizer();
        services.AddSingleton<IServedModel>(File.Exists(Path.Combine(options.ModelFolder, "config.json"))
            ? ServedModels.FromFolder(options.ModelFolder, tokenizer)
            : new ServedModel(ServedModels.NameOf(options.ModelFolder), 4096, tokenizer, DateTimeOffset.UtcNow));
        services.AddSingleton<IQueryClient, RefusingQueryClient>();
    }

    public void ConfigureAkka(AkkaConfigurationBuilder akka, IServiceProvider services, ServeOptions options) { }

    private sealed class RefusingQueryClient : IQueryClient
    {
        public async IAsyncEnumerable<QueryEvent> SubmitAsync(QueryRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            await Task.CompletedTask;
            yield return new QueryRefused(request.QueryId, RefusalReason.NoModelReady, Why, null);
        }

        public Task<RouterStatus> GetStatusAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
            Task.FromResult(new RouterStatus(Environment.MachineName, false, false, 0, 0, 0, 0, [],
                new CacheStats(0, 0, 0, 0), null));
    }

    /// <summary>Only so that prompts reach the refusing client; its ids mean nothing.</summary>
    private sealed class Utf8PlaceholderTokenizer : ITokenizer
    {
        public int VocabSize => 256;
        public bool HasChatTemplate => false;
        public IReadOnlyList<int> EndOfTurnTokenIds => [];
        public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false) => Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();
        public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false) => Encoding.UTF8.GetString(ids.Select(i => (byte)i).ToArray());
        public IStreamingDetokenizer CreateStreamingDetokenizer(bool skipSpecialTokens = true) => throw new NotSupportedException(Why);
        public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
            string.Concat(messages.Select(m => m.Content));
    }
}
