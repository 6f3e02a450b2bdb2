namespace Onyx.AppHost.Ollama;

/// <summary>The Ollama container image, pinned in one place (like Aspire's <c>RedisContainerImageTags</c>).</summary>
internal static class OllamaContainerImageTags
{
    /// <summary>docker.io</summary>
    public const string Registry = "docker.io";

    /// <summary>ollama/ollama</summary>
    public const string Image = "ollama/ollama";

    /// <summary>0.12.6</summary>
    public const string Tag = "0.12.6";
}
