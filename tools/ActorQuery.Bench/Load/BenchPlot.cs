using ScottPlot;

namespace ActorQuery.Bench.Load;

/// <summary>
/// The benchmark's PNG: output tokens/s against concurrency (with the engine-alone single-stream figure as a line),
/// then time to first token and inter-token latency (p50 and p99, log scale: they span milliseconds to minutes).
/// Concurrency levels sit at even spacing with their values as tick labels, since they usually grow geometrically.
/// </summary>
public static class BenchPlot
{
    public static void Save(string path, IReadOnlyList<LevelSummary> levels, double? engineTokensPerSecond, string title)
    {
        double[] xs = Enumerable.Range(0, levels.Count).Select(i => (double)i).ToArray();
        string[] labels = levels.Select(l => l.Concurrency.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();

        Plot throughput = new(), ttft = new(), itl = new();
        var multiplot = new Multiplot { Layout = new ScottPlot.MultiplotLayouts.Columns() };
        while (multiplot.Subplots.Count > 0) multiplot.Subplots.RemoveAt(0); // it starts with one empty plot
        foreach (var plot in new[] { throughput, ttft, itl }) multiplot.AddPlot(plot);

        var tokens = throughput.Add.Scatter(xs, levels.Select(l => l.OutputTokensPerSecond).ToArray());
        tokens.LegendText = "through HTTP";
        tokens.LineWidth = 2;
        if (engineTokensPerSecond is { } engine)
        {
            var line = throughput.Add.HorizontalLine(engine);
            line.LegendText = "engine alone, 1 stream";
            line.LinePattern = LinePattern.Dashed;
        }
        Axes(throughput, xs, labels, "output tokens/s", $"Throughput: {title}");
        throughput.Axes.SetLimitsY(0, Math.Max(1, Math.Max(levels.Max(l => l.OutputTokensPerSecond), engineTokensPerSecond ?? 0)) * 1.15);

        Latency(ttft, xs, labels, "Time to first token", levels.Select(l => l.TtftP50Ms).ToList(), levels.Select(l => l.TtftP99Ms).ToList());
        Latency(itl, xs, labels, "Inter-token latency", levels.Select(l => l.ItlP50Ms).ToList(), levels.Select(l => l.ItlP99Ms).ToList());

        multiplot.SavePng(path, 1500, 500);
    }

    private static void Latency(Plot plot, double[] xs, string[] labels, string title, List<double> p50, List<double> p99)
    {
        // ScottPlot draws a log axis as log10 of the data with tick labels put back (its documented recipe); ticks
        // at 1-2-5 steps, so that a range within one decade still gets labels.
        static double[] Log(IEnumerable<double> ms) => ms.Select(v => v > 0 ? Math.Log10(v) : double.NaN).ToArray();
        var a = plot.Add.Scatter(xs, Log(p50));
        a.LegendText = "p50";
        a.LineWidth = 2;
        var b = plot.Add.Scatter(xs, Log(p99));
        b.LegendText = "p99";
        b.LineWidth = 2;
        b.LinePattern = LinePattern.Dashed;
        Axes(plot, xs, labels, "milliseconds (log scale)", title);
        var values = p50.Concat(p99).Where(v => v > 0 && double.IsFinite(v)).ToList();
        if (values.Count == 0) return;
        double lo = Math.Log10(values.Min()) - 0.1, hi = Math.Log10(values.Max()) + 0.15;
        plot.Axes.SetLimitsY(lo, hi);
        var ticks = new List<double>();
        for (int e = (int)Math.Floor(lo); e <= (int)Math.Ceiling(hi); e++)
            foreach (var m in new[] { 1.0, 2.0, 5.0 })
                if (Math.Log10(m) + e is var t && t >= lo && t <= hi) ticks.Add(t);
        plot.Axes.Left.SetTicks(ticks.ToArray(),
            ticks.Select(t => Math.Pow(10, t).ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)).ToArray());
    }

    private static void Axes(Plot plot, double[] xs, string[] labels, string yLabel, string title)
    {
        plot.Axes.Bottom.SetTicks(xs, labels);
        plot.Axes.Bottom.Label.Text = "concurrent streams";
        plot.Axes.Left.Label.Text = yLabel;
        plot.Title(title);
        plot.Axes.Title.Label.FontSize = 15;
        plot.ShowLegend(Alignment.UpperLeft);
    }
}
