using System.Collections;
using System.Reflection;
using Microsoft.Extensions.Options;

namespace Onyx.Gateway.Configuration;

/// <summary>A part of the <c>Onyx:*</c> configuration some feature reads: a section bound to an options type, or one key.</summary>
internal sealed record OnyxSetting(string Key, Type? OptionsType = null);

internal static class OnyxSettings
{
    /// <summary>
    /// Binds <typeparamref name="TOptions"/> to <paramref name="section"/>, validates it at start-up, and records the
    /// section as known: a key under <c>Onyx:</c> that no feature reads is reported by name (<see cref="UnknownKeys"/>).
    /// </summary>
    public static OptionsBuilder<TOptions> AddOnyxOptions<TOptions>(this IHostApplicationBuilder builder, string section) where TOptions : class
    {
        builder.Services.AddSingleton(new OnyxSetting(section, typeof(TOptions)));
        return builder.Services.AddOptions<TOptions>().Bind(builder.Configuration.GetSection(section)).ValidateOnStart();
    }

    /// <summary>Records a single <c>Onyx:*</c> key read directly (not bound to options) as known.</summary>
    public static IHostApplicationBuilder AddOnyxKey(this IHostApplicationBuilder builder, string key)
    {
        builder.Services.AddSingleton(new OnyxSetting(key));
        return builder;
    }

    /// <summary>Every <c>Onyx:*</c> key with a value that no known section or key accounts for, in order.</summary>
    public static IEnumerable<string> UnknownKeys(IConfiguration configuration, IEnumerable<OnyxSetting> known)
    {
        var settings = known.OrderByDescending(s => s.Key.Length).ToList();
        return Leaves(configuration.GetSection(OnyxOptions.SectionName))
            .Where(key => !settings.Any(s => Accounts(s, key)))
            .Order(StringComparer.OrdinalIgnoreCase);
    }

    private static IEnumerable<string> Leaves(IConfigurationSection section)
    {
        foreach (var child in section.GetChildren())
        {
            var any = false;
            foreach (var leaf in Leaves(child))
            {
                any = true;
                yield return leaf;
            }
            // A section with keys under it is not a value of its own (some sources give it an empty one).
            if (!any && child.Value is not null)
            {
                yield return child.Path;
            }
        }
    }

    private static bool Accounts(OnyxSetting setting, string key)
    {
        if (key.Equals(setting.Key, StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }
        if (setting.OptionsType is null || !key.StartsWith(setting.Key + ":", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        return Binds(setting.OptionsType, key[(setting.Key.Length + 1)..].Split(':'));
    }

    /// <summary>Whether the configuration binder would put a value at <paramref name="path"/> of a <paramref name="type"/>.</summary>
    private static bool Binds(Type type, ReadOnlySpan<string> path)
    {
        while (true)
        {
            if (path.IsEmpty)
            {
                return true;
            }
            type = Nullable.GetUnderlyingType(type) ?? type;
            if (type == typeof(string) || type.IsPrimitive || type.IsEnum || type == typeof(decimal) || type == typeof(TimeSpan) || type == typeof(Uri))
            {
                return false;
            }
            if (type.IsArray)
            {
                type = type.GetElementType()!;
                path = path[1..];
                continue;
            }
            if (type.IsGenericType && typeof(IEnumerable).IsAssignableFrom(type))
            {
                // A dictionary takes any key; a list an index: either way, the next name is the element's.
                type = type.GetGenericArguments()[^1];
                path = path[1..];
                continue;
            }
            var property = type.GetProperty(path[0], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null || property.SetMethod is null && !property.PropertyType.IsClass)
            {
                return false;
            }
            type = property.PropertyType;
            path = path[1..];
        }
    }
}
