using System.Text.Json;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Model;
using Onyx.Gateway.RateLimiting;

namespace Onyx.Gateway.Api;

/// <summary>
/// Generating, changing, revoking and listing API keys with their spend: what <c>/key/*</c> and the admin console both
/// do, so a key made or changed in either is checked by the same rules (<see cref="KeyFields"/>) and stored the same way.
/// Errors are OpenAI-shaped; the console shows their message beside the field their <c>param</c> names.
/// </summary>
internal sealed class KeyManagement(KeyRegistry keys, RoutingTable routing, UsageLimiter limiter, TimeProvider time)
{
    /// <summary>A new key from <c>/key/generate</c>'s fields; the key itself is in the answer and nowhere else.</summary>
    public async Task<(GeneratedKey? Key, OpenAiErrorResult? Error)> GenerateAsync(JsonElement body, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var (fields, invalid) = KeyFields.Parse(body, KeyFields.Generate, routing, now);
        if (invalid is not null)
        {
            return (null, invalid);
        }
        var key = ApiKeys.Generate();
        var hash = ApiKeys.Hash(key);
        var record = fields.ApplyTo(new ApiKeyRecord
        {
            Hash = hash,
            KeyName = ApiKeys.Name(key),
            // A key without a user is its own user: its limits are its own.
            UserId = fields.UserId ?? "key-" + hash[..12],
            CreatedAt = now,
        });
        if (record.Expires <= now)
        {
            return (null, KeysApi.Invalid("The key would already be expired.", fields.Has("duration") ? "duration" : "expires"));
        }
        await keys.SaveAsync(record, cancellationToken);
        return (new GeneratedKey(key, record), null);
    }

    /// <summary>
    /// <c>/key/update</c>'s fields: <c>key</c> (the key or its hash) and the fields to change; a field set to <c>null</c>
    /// is removed (a limit or budget then no longer applies). A key's user cannot change: its limits and budget are
    /// counted under it.
    /// </summary>
    public async Task<(KeyInfo? Info, OpenAiErrorResult? Error)> UpdateAsync(JsonElement body, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var (fields, invalid) = KeyFields.Parse(body, KeyFields.Update, routing, now);
        if (invalid is not null)
        {
            return (null, invalid);
        }
        if (fields.Key is not { } given)
        {
            return (null, KeysApi.Invalid("'key' must name the key to update (the key or its token).", "key"));
        }
        var hash = ApiKeys.IsHash(given) ? given : ApiKeys.Hash(given);
        if (keys.IsConfigured(hash))
        {
            return (null, KeysApi.Invalid("A key declared in the config file is changed by editing the file, not through /key/update.", "key"));
        }
        if (await keys.FindAsync(hash, cancellationToken) is not { } record)
        {
            return (null, NotFound());
        }
        var updated = fields.ApplyTo(record);
        if (updated.Expires <= now && fields.Has("duration", "expires"))
        {
            return (null, KeysApi.Invalid("The key would already be expired.", fields.Has("duration") ? "duration" : "expires"));
        }
        await keys.SaveAsync(updated, cancellationToken);
        // A window whose length changed starts again from the next request (keeping what was spent), as LiteLLM sets a
        // new budget_reset_at when budget_duration changes.
        var changedWindows = (updated.ModelMaxBudget ?? new Dictionary<string, ModelBudget>())
            .Where(m => record.ModelMaxBudget?.GetValueOrDefault(m.Key)?.TimePeriod != m.Value.TimePeriod)
            .Select(m => m.Key)
            .ToList();
        if (updated.BudgetDuration != record.BudgetDuration || changedWindows.Count > 0)
        {
            await limiter.ResetBudgetWindowsAsync(updated.UserId, hash, changedWindows, cancellationToken);
        }
        return (new KeyInfo(hash, await WithSpendAsync(updated, cancellationToken)), null);
    }

    /// <summary>Revokes keys (each the key or its hash) and drops their budgets; lists those that existed.</summary>
    public async Task<(List<string> Deleted, OpenAiErrorResult? Error)> DeleteAsync(IReadOnlyList<string> given, CancellationToken cancellationToken)
    {
        var hashes = given.Select(k => ApiKeys.IsHash(k) ? k : ApiKeys.Hash(k)).ToList();
        if (hashes.FirstOrDefault(keys.IsConfigured) is not null)
        {
            return ([], KeysApi.Invalid("A key declared in the config file is removed by editing the file, not through /key/delete.", "keys"));
        }
        var deleted = new List<string>();
        for (var i = 0; i < given.Count; i++)
        {
            var record = await keys.FindAsync(hashes[i], cancellationToken);
            if (await keys.DeleteAsync(hashes[i], cancellationToken))
            {
                deleted.Add(given[i]);
                if (record is not null)
                {
                    await limiter.DeleteBudgetAsync(record.UserId, record.Hash, cancellationToken);
                }
            }
        }
        return deleted.Count == 0 ? ([], NotFound()) : (deleted, null);
    }

    /// <summary>A key's record by its hash (config keys included), with its spend; null when there is no such key.</summary>
    public async Task<ApiKeyRecord?> FindAsync(string hash, CancellationToken cancellationToken) =>
        await keys.FindAsync(hash, cancellationToken) is { } record ? await WithSpendAsync(record, cancellationToken) : null;

    /// <summary>Every key (config keys first), oldest first, without spend: <see cref="WithSpendAsync"/> adds it per key.</summary>
    public async Task<List<ApiKeyRecord>> ListAsync(CancellationToken cancellationToken) =>
        [.. (await keys.ListAsync(cancellationToken)).OrderBy(k => k.CreatedAt).ThenBy(k => k.Hash, StringComparer.Ordinal)];

    public bool IsConfigured(string hash) => keys.IsConfigured(hash);

    /// <summary>
    /// The record with what the key has spent in its current window, when that window ends, and its spend per alias of
    /// <c>model_max_budget</c>. A window that ended but has not been rolled over by a request yet reads as empty. While
    /// the store cannot be read, these are left out: the record still answers the question.
    /// </summary>
    public async Task<ApiKeyRecord> WithSpendAsync(ApiKeyRecord record, CancellationToken cancellationToken)
    {
        BudgetState state;
        try
        {
            state = await limiter.ReadBudgetAsync(record.UserId, record.Hash, cancellationToken);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            return record;
        }
        var now = time.GetUtcNow();
        (decimal Spend, DateTimeOffset? ResetAt) Window(long spend, long resetAt, string? duration)
        {
            if (duration is null)
            {
                return (UsdUnits.ToUsd(spend), null);
            }
            if (resetAt == 0 || resetAt <= now.ToUnixTimeMilliseconds())
            {
                return (resetAt == 0 ? UsdUnits.ToUsd(spend) : 0, BudgetDurations.NextReset(duration, now));
            }
            return (UsdUnits.ToUsd(spend), DateTimeOffset.FromUnixTimeMilliseconds(resetAt));
        }
        var (spent, resets) = Window(state.Spend, state.ResetAt, record.BudgetDuration);
        var models = record.ModelMaxBudget?.ToDictionary(m => m.Key, m =>
        {
            var used = state.Models.GetValueOrDefault(m.Key);
            return Window(used?.Spend ?? 0, used?.ResetAt ?? 0, m.Value.TimePeriod).Spend;
        }, StringComparer.Ordinal);
        return record with { Spend = spent, BudgetResetAt = resets, ModelSpend = models };
    }

    internal static OpenAiErrorResult NotFound() => new(StatusCodes.Status404NotFound,
        new OpenAi.OpenAiError("No such key.", OpenAi.OpenAiErrorTypes.NotFound, "key", "key_not_found"));
}
