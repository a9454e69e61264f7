namespace ActorQuery.Bench;

/// <summary>The HTTP client of the load verbs (http, soak): one server, as many connections as clients.</summary>
internal static class LoadHttp
{
    /// <summary>A client for <paramref name="url"/>; a URL that is not http(s) is a bad --url (one line, exit 2).</summary>
    public static HttpClient Create(string url, double timeoutSeconds)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var baseUri) || baseUri.Scheme is not ("http" or "https"))
            throw new CliException($"option --url: '{url}' is not an http(s) URL");
        return new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue })
        {
            BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(timeoutSeconds),
        };
    }
}
