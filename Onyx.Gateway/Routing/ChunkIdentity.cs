using System.Text.Json;

namespace Onyx.Gateway.Routing;

/// <summary>The identity the client's first chunk gave the answer: every later chunk must carry the same.</summary>
internal sealed record ChunkIdentity(string? Id, long? Created, string? SystemFingerprint)
{
    public static ChunkIdentity Read(ReadOnlyMemory<byte> chunk)
    {
        if (chunk.IsEmpty)
        {
            return new ChunkIdentity(null, null, null);
        }
        try
        {
            using var document = JsonDocument.Parse(chunk);
            var root = document.RootElement;
            return new ChunkIdentity(
                root.TryGetProperty("id"u8, out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null,
                root.TryGetProperty("created"u8, out var created) && created.TryGetInt64(out var seconds) ? seconds : null,
                root.TryGetProperty("system_fingerprint"u8, out var fingerprint) && fingerprint.ValueKind == JsonValueKind.String ? fingerprint.GetString() : null);
        }
        catch (JsonException)
        {
            return new ChunkIdentity(null, null, null);
        }
    }
}
