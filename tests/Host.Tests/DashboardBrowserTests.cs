using System.Net;
using System.Text;
using System.Text.Json;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;

namespace ActorQuery.Host.Tests;

/// <summary>
/// The dashboard in a real browser: Debian's chromium, headless, driven through chromedriver by Selenium, against the
/// shipped server with the default model. Skipped, with the reason, where chromium or chromedriver is not installed
/// (<c>.ci/run</c> installs both). With <c>ACTORQUERY_SCREENSHOTS=DIR</c> it also puts the dashboard under load and saves
/// the README's screenshots there.
/// </summary>
[Collection(ServeCollection.Name)]
public sealed class DashboardBrowserTests
{
    /// <summary>Engine step that raises a (real libtorch) out-of-memory: after the playground's few steps.</summary>
    private const int OomStep = 40;

    [SkippableFact]
    public async Task Dashboard_shows_the_worker_and_memory_the_playground_streams_the_answer_and_an_oom_reaches_the_timeline_within_2_s()
    {
        var (browser, driverFolder, driverFile) = FindBrowser();
        Skip.If(browser is null, "chromium is not installed (apt-get install chromium chromium-driver)");
        Skip.If(driverFolder is null, "chromedriver is not installed (apt-get install chromium-driver)");

        await using var server = await DefaultModelServer.StartAsync(["--max-in-flight", "16"],
            new() { [$"ActorQuery:Faults:OomAtSteps:0"] = OomStep.ToString() });
        using var driver = StartChromium(browser!, driverFolder!, driverFile!);
        driver.Navigate().GoToUrl(server.Url + "/ui");

        // The worker ready, with its pid, and the memory bar with the plan's parts and the watchdog's marks.
        var row = await Until(() => driver.FindElements(By.CssSelector("#workers tr[data-state='ready']")).FirstOrDefault(),
            "the worker to show as ready");
        // The model runs in the server's worker process: the row names that process's pid.
        var processes = System.Text.Json.JsonDocument.Parse(await server.Http.GetStringAsync("/health")).RootElement;
        Assert.Contains(processes.GetProperty("worker_processes")[0].GetProperty("pid").GetInt32().ToString(), row.Text);
        await Until(() => driver.FindElements(By.CssSelector("#memory-bar .seg[data-part='weights']")).FirstOrDefault(), "the memory bar");
        var weights = driver.FindElement(By.CssSelector("#memory-bar .seg[data-part='weights']"));
        Assert.True(weights.Size.Width > 0, "the weights take no width in the memory bar");
        Assert.NotEmpty(driver.FindElements(By.CssSelector("#memory-bar .mark.pause")));
        Assert.Contains("weights", driver.FindElement(By.Id("memory-legend")).Text);
        Assert.Contains("ok", driver.FindElement(By.Id("status")).Text);

        // The playground streams the default model's answer through POST /v1/chat/completions.
        var user = driver.FindElement(By.Id("pg-user"));
        user.Clear();
        user.SendKeys("What is 37 + 58?");
        driver.FindElement(By.Id("pg-send")).Click();
        await Until(() => driver.FindElement(By.Id("pg-stats")).Text.Contains("total") ? "done" : null, "the playground's answer to finish");
        Assert.Contains("95", driver.FindElement(By.Id("pg-output")).Text);
        Assert.Matches(@"\d+ tokens", driver.FindElement(By.Id("pg-stats")).Text);

        // An out-of-memory at engine step 40, forced by a long completion: on the timeline within 2 s.
        using (var r = await server.Http.PostAsync("/v1/completions", new StringContent(
                   """{"prompt": "What is 1 + 1?", "max_tokens": 60, "ignore_eos": true, "temperature": 0}""", Encoding.UTF8, "application/json")))
        { }
        var health = JsonDocument.Parse(await server.Http.GetStringAsync("/health")).RootElement;
        var worker = health.GetProperty("workers")[0];
        Assert.True(worker.GetProperty("oom_count").GetInt32() >= 1, $"no out-of-memory happened: {worker}");
        var oom = await Until(() => driver.FindElements(By.CssSelector("#timeline li[data-kind='oom']")).FirstOrDefault(),
            "the out-of-memory on the timeline", TimeSpan.FromSeconds(2));
        Assert.Contains("ran out of memory and recovered", oom.Text);
        var seenAt = DateTimeOffset.Parse(oom.FindElement(By.TagName("time")).GetAttribute("datetime")!);
        var oomAt = worker.GetProperty("last_oom").GetDateTimeOffset();
        Assert.True(seenAt - oomAt <= TimeSpan.FromSeconds(2), $"the timeline saw the out-of-memory of {oomAt:O} at {seenAt:O}");
        Assert.NotEmpty(driver.FindElements(By.CssSelector("#timeline li[data-kind='oom_recovered'][data-alert='firing']")));

        var errors = BrowserErrors(driver);
        Assert.True(errors.Count == 0, "console errors: " + string.Join(" | ", errors));

        if (Environment.GetEnvironmentVariable("ACTORQUERY_SCREENSHOTS") is { Length: > 0 } folder)
            await TakeScreenshotsAsync(driver, server, Path.Combine(RepoFixtures.Root, folder)); // relative: to the repository
    }

    [SkippableFact]
    public async Task With_api_keys_on_the_dashboard_asks_for_the_key_then_shows_the_worker_and_the_playground_answers()
    {
        var (browser, driverFolder, driverFile) = FindBrowser();
        Skip.If(browser is null, "chromium is not installed (apt-get install chromium chromium-driver)");
        Skip.If(driverFolder is null, "chromedriver is not installed (apt-get install chromium-driver)");
        const string key = "dashboard-key-0123456789";

        await using var server = await DefaultModelServer.StartAsync(["--api-key", key]);
        using var driver = StartChromium(browser!, driverFolder!, driverFile!);
        driver.Navigate().GoToUrl(server.Url + "/ui");
        await Until(() => driver.FindElement(By.Id("status")).Text.Contains("API key needed") ? "asked" : null, "the page to ask for the key");
        Assert.Empty(driver.FindElements(By.CssSelector("#workers tr[data-state='ready']")));

        var field = driver.FindElement(By.Id("pg-key"));
        field.SendKeys(key);
        field.SendKeys(Keys.Tab); // the change event: the page reconnects the live feed with the key
        var row = await Until(() => driver.FindElements(By.CssSelector("#workers tr[data-state='ready']")).FirstOrDefault(),
            "the worker to show as ready once the key is given");
        Assert.Contains("ready", row.Text);

        var user = driver.FindElement(By.Id("pg-user"));
        user.Clear();
        user.SendKeys("What is 37 + 58?");
        driver.FindElement(By.Id("pg-send")).Click();
        await Until(() => driver.FindElement(By.Id("pg-stats")).Text.Contains("total") ? "done" : null, "the playground's answer to finish");
        Assert.Contains("95", driver.FindElement(By.Id("pg-output")).Text);
        // The only console errors are the refused calls made before the key was given.
        Assert.All(BrowserErrors(driver), e => Assert.Contains("401", e));
    }

    private static async Task TakeScreenshotsAsync(ChromeDriver driver, DefaultModelServer server, string folder)
    {
        Directory.CreateDirectory(folder);
        // Load: 12 clients asking one after another for 40 s, so that the charts have something to show.
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(40));
        var clients = Enumerable.Range(0, 12).Select(i => Task.Run(async () =>
        {
            var rng = new Random(i);
            while (!stop.IsCancellationRequested)
            {
                string body = $$"""{"messages":[{"role":"user","content":"What is {{rng.Next(1000)}} + {{rng.Next(1000)}}?"}],"max_tokens":48,"ignore_eos":true,"stream":true}""";
                try
                {
                    using var r = await server.Http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"), stop.Token);
                    await r.Content.ReadAsStringAsync(stop.Token);
                }
                catch (OperationCanceledException) { }
            }
        })).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(35));
        driver.ExecuteScript("window.scrollTo(0, 0)");
        driver.GetScreenshot().SaveAsFile(Path.Combine(folder, "dashboard.png"));
        await Task.WhenAll(clients);

        // No system prompt: the default model was trained on plain prompts and user turns only.
        driver.ExecuteScript("document.getElementById('playground').scrollIntoView()");
        var user = driver.FindElement(By.Id("pg-user"));
        user.Clear();
        user.SendKeys("What is 486 + 539?");
        driver.FindElement(By.Id("pg-send")).Click();
        await Until(() => driver.FindElement(By.Id("pg-stats")).Text.Contains("total") ? "done" : null, "the playground's answer");
        driver.GetScreenshot().SaveAsFile(Path.Combine(folder, "playground.png"));
    }

    /// <summary>Severe entries of the browser's console log (errors, failed loads).</summary>
    private static List<string> BrowserErrors(ChromeDriver driver) =>
        driver.Manage().Logs.GetLog(LogType.Browser).Where(e => e.Level >= LogLevel.Severe).Select(e => e.Message).ToList();

    private static ChromeDriver StartChromium(string browser, string driverFolder, string driverFile)
    {
        var options = new ChromeOptions { BinaryLocation = browser };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1100",
            "--hide-scrollbars");
        options.SetLoggingPreference(LogType.Browser, LogLevel.All);
        var service = ChromeDriverService.CreateDefaultService(driverFolder, driverFile);
        service.HideCommandPromptWindow = true;
        service.SuppressInitialDiagnosticInformation = true;
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }

    /// <summary>The system's chromium and chromedriver on PATH (Debian: /usr/bin/chromium, /usr/bin/chromedriver).</summary>
    private static (string? Browser, string? DriverFolder, string? DriverFile) FindBrowser()
    {
        string? Find(params string[] names)
        {
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
                foreach (var name in names)
                    if (File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
            return null;
        }
        string? browser = Find("chromium", "chromium-browser");
        string? driver = Find("chromedriver");
        return (browser, driver is null ? null : Path.GetDirectoryName(driver), driver is null ? null : Path.GetFileName(driver));
    }

    private static async Task<T> Until<T>(Func<T?> probe, string what, TimeSpan? timeout = null) where T : class
    {
        T? found = null;
        await Eventually.Until(() =>
        {
            try { found = probe(); }
            catch (StaleElementReferenceException) { found = null; }
            return found is not null;
        }, timeout ?? TimeSpan.FromSeconds(20), what, interval: TimeSpan.FromMilliseconds(50));
        return found!;
    }
}
