using Akka.Hosting;
using ActorQuery.Actors;
using ActorQuery.Api;
using Microsoft.Extensions.DependencyInjection;

namespace ActorQuery.Host.Serve;

/// <summary>
/// What plugs the model and the actors into <c>serve</c>. An implementation must register an
/// <see cref="IQueryClient"/> (the node's QueryRouter) and an <see cref="IServedModel"/> (name, context length,
/// tokenizer of the model folder) in <see cref="ConfigureServices"/>, and add its actors in <see cref="ConfigureAkka"/>.
/// </summary>
public interface IServeBackend
{
    void ConfigureServices(IServiceCollection services, ServeOptions options);

    void ConfigureAkka(AkkaConfigurationBuilder akka, IServiceProvider services, ServeOptions options);
}

/// <summary>The one place that chooses the backend <c>actorquery serve</c> runs with.</summary>
public static class ServeBackends
{
    // WIRING POINT: replace NotWiredBackend with the actor backend (QueryRouter + ModelSupervisor + MemoryWatchdog
    // registered on `akka`, an IQueryClient over the router, and an IServedModel from the model folder's tokenizer).
    public static IServeBackend Default() => new NotWiredBackend();
}
