using Microsoft.Extensions.Configuration;
using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>A LiteLLM config file's text bound to options without starting a gateway.</summary>
public static class LiteLlmConfig
{
    /// <summary>Binds a config file's text as the gateway does (bind, then read litellm_settings where router_settings is silent).</summary>
    internal static LiteLlmOptions Bind(string yaml)
    {
        var path = Path.GetTempFileName();
        File.WriteAllText(path, yaml);
        try
        {
            var options = new ConfigurationBuilder().AddYamlFile(path, optional: false).Build().Get<LiteLlmOptions>()!;
            options.ApplyLiteLlmSettings();
            return options;
        }
        finally
        {
            File.Delete(path);
        }
    }
}
