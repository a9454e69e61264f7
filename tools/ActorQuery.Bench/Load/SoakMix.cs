using System.Text.Json.Nodes;

namespace ActorQuery.Bench.Load;

/// <summary>
/// The soak's requests, reproducible from a seed: 1 to 12 arithmetic questions per prompt (about 8 to 120 tokens on
/// the default model), 1 to <c>maxTokens</c> new tokens (half with <c>ignore_eos</c>, so lengths really vary), a
/// quarter greedy and the rest sampled at temperature 0.8; 60% streamed from <c>/v1/completions</c>, 20% streamed from
/// <c>/query</c>, 20% not streamed. A <c>disconnectFraction</c> of them hang up on purpose: streams after 1 to
/// maxTokens/2 chunks, plain requests after 5 to 200 ms.
/// </summary>
public static class SoakMix
{
    public static IReadOnlyList<LoadRequest> Create(int count, int maxTokens, double disconnectFraction, int seed)
    {
        var rng = new Random(seed);
        var list = new List<LoadRequest>(count);
        for (int i = 0; i < count; i++)
        {
            var questions = Enumerable.Range(0, rng.Next(1, 13)).Select(_ => Question(rng));
            string prompt = string.Join(" ", questions);
            int max = rng.Next(1, maxTokens + 1);
            bool ignoreEos = rng.NextDouble() < 0.5;
            float temperature = rng.NextDouble() < 0.25 ? 0 : 0.8f;
            double kind = rng.NextDouble();
            var endpoint = kind < 0.2 ? LoadEndpoint.Native : LoadEndpoint.Completions;
            bool stream = kind < 0.8;
            bool disconnect = rng.NextDouble() < disconnectFraction;
            list.Add(new LoadRequest(JsonValue.Create(prompt), max, ignoreEos, temperature, stream, endpoint,
                DisconnectAfterChunks: disconnect && stream ? rng.Next(1, Math.Max(2, maxTokens / 2 + 1)) : null,
                DisconnectAfter: disconnect && !stream ? TimeSpan.FromMilliseconds(rng.Next(5, 201)) : null));
        }
        return list;
    }

    private static string Question(Random rng) => rng.Next(4) switch
    {
        0 => $"What is {rng.Next(1000)} + {rng.Next(1000)}?",
        1 => $"Compute {rng.Next(1000)} - {rng.Next(1000)}.",
        2 => $"{rng.Next(13)} times {rng.Next(13)}?",
        _ => $"{rng.Next(1000)} 加 {rng.Next(1000)} 等于多少？",
    };
}
