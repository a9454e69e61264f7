namespace ActorQuery.Api.Tests.Fakes;

/// <summary>One server-sent event as a client sees it.</summary>
public sealed record SseEvent(string? Event, string Data);

public static class Sse
{
    /// <summary>Parses a whole text/event-stream body.</summary>
    public static List<SseEvent> Parse(string body)
    {
        var events = new List<SseEvent>();
        foreach (var block in body.Replace("\r\n", "\n").Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            string? ev = null;
            var data = new List<string>();
            foreach (var line in block.Split('\n'))
            {
                if (line.StartsWith("event:")) ev = line[6..].TrimStart();
                else if (line.StartsWith("data:")) data.Add(line[5..].TrimStart());
            }
            if (data.Count > 0 || ev is not null) events.Add(new SseEvent(ev, string.Join("\n", data)));
        }
        return events;
    }
}
