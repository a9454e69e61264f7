using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace ActorQuery.Bench;

/// <summary>
/// <c>bench-tokenizer --tokenizer PATH [--mb N] [--seed S] [--json]</c>: encoding speed on one thread over generated
/// mixed English/Chinese text (half the bytes each), after a warm-up pass on other text of the same kind.
/// Reports MB per wall-clock second and MB per CPU-second of this process: on a shared, busy machine the wall
/// clock measures the neighbours, the CPU time measures the tokenizer.
/// </summary>
public static class TokenizerBenchCommand
{
    private static readonly string[] EnglishWords =
        ("the of and to in is was for on that with as by at from it an be this are or which not have has had but were his " +
         "memory server model query worker restart cache token request response error timeout cluster node actor queue " +
         "answer question text stream batch device kernel tensor weights layer attention budget pressure freed released " +
         "Paris France capital river mountain city people government history science language network system process " +
         "quickly slowly carefully however because although therefore meanwhile tomorrow yesterday today always never " +
         "don't it's we're they've I'll you'd GPU CPU HTTP JSON API").Split(' ');

    // The most frequent Chinese characters, so that words look like real text rather than random rare glyphs.
    private const string ChineseChars =
        "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从知使" +
        "服务崩溃无法处理查询请求内存问题已修复模型重新加载后继续回答用户的问题系统资源释放节点集群缓存超时错误响应流式生成文本设备显卡张量权重注意力预算压力";

    public static int Run(string[] args)
    {
        var cli = new CliArgs(args, new HashSet<string> { "json" });
        var path = cli.RequiredString("tokenizer");
        int mb = cli.Int("mb", 1, 1024) ?? 4;
        int seed = cli.Int("seed") ?? 1;
        bool json = cli.Flag("json");
        cli.EnsureAllUsed();

        var load = Stopwatch.StartNew();
        var tokenizer = EngineCli.LoadTokenizer(path);
        load.Stop();

        tokenizer.Encode(MixedText(seed + 1000, 1)); // warm-up: JIT and the library's word cache, on other text
        var text = MixedText(seed, mb);
        int bytes = Encoding.UTF8.GetByteCount(text);
        var rates = new List<double>();
        var cpuRates = new List<double>();
        int tokens = 0;
        using var process = Process.GetCurrentProcess();
        for (int pass = 0; pass < 3; pass++)
        {
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            tokens = tokenizer.Encode(text).Count;
            sw.Stop();
            process.Refresh();
            rates.Add(bytes / 1e6 / sw.Elapsed.TotalSeconds);
            cpuRates.Add(bytes / 1e6 / (process.TotalProcessorTime - cpu0).TotalSeconds);
        }
        rates.Sort();
        cpuRates.Sort();
        var result = new
        {
            tokenizer = path,
            text_mb = Math.Round(bytes / 1e6, 3),
            tokens,
            load_s = Math.Round(load.Elapsed.TotalSeconds, 2),
            mb_per_s_median = Math.Round(rates[1], 2),
            mb_per_s_min = Math.Round(rates[0], 2),
            mb_per_s_max = Math.Round(rates[2], 2),
            mb_per_cpu_s_median = Math.Round(cpuRates[1], 2),
            threads = 1,
        };
        if (json) Console.WriteLine(JsonSerializer.Serialize(result, EngineCli.Json));
        else
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"encoded {result.text_mb} MB of mixed English/Chinese text into {tokens} tokens on one thread: " +
                $"{result.mb_per_s_median} MB/s median of 3 (min {result.mb_per_s_min}, max {result.mb_per_s_max}), " +
                $"{result.mb_per_cpu_s_median} MB per CPU-second; tokenizer load {result.load_s} s"));
        }
        return 0;
    }

    /// <summary>About <paramref name="mb"/> MB of UTF-8: alternating English and Chinese sentences, half the bytes each.</summary>
    internal static string MixedText(int seed, int mb)
    {
        var random = new Random(seed);
        var sb = new StringBuilder();
        long target = mb * 1_000_000L, englishBytes = 0, chineseBytes = 0;
        while (englishBytes + chineseBytes < target)
        {
            if (englishBytes <= chineseBytes)
            {
                int start = sb.Length;
                int words = random.Next(6, 20);
                for (int w = 0; w < words; w++)
                {
                    if (w > 0) sb.Append(' ');
                    sb.Append(random.Next(12) == 0 ? random.Next(0, 100_000).ToString(CultureInfo.InvariantCulture) : EnglishWords[random.Next(EnglishWords.Length)]);
                }
                sb.Append(random.Next(4) == 0 ? ".\n" : ". ");
                englishBytes += sb.Length - start; // ASCII: one byte a character
            }
            else
            {
                int chars = random.Next(8, 40);
                for (int c = 0; c < chars; c++)
                {
                    sb.Append(ChineseChars[random.Next(ChineseChars.Length)]);
                    if (random.Next(10) == 0) sb.Append(random.Next(2) == 0 ? '，' : '、');
                }
                sb.Append(random.Next(3) == 0 ? "。\n" : "。");
                chineseBytes += (chars + 1) * 3L;
            }
        }
        return sb.ToString();
    }
}
