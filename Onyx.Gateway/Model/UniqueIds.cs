using System.Buffers.Binary;

namespace Onyx.Gateway.Model;

/// <summary>
/// Ids the gateway makes for every request (the request id, the audit record's id): unique, not secret. They come
/// from <see cref="Random.Shared"/> (seeded per thread from the OS) rather than <see cref="Guid.NewGuid"/>, which
/// asks the OS for cryptographic randomness on every call: a system call per request for ids nobody needs to be
/// unguessable (docs/design-notes.md).
/// </summary>
internal static class UniqueIds
{
    /// <summary>A random 128-bit id as 32 lowercase hex digits, like <c>Guid.NewGuid().ToString("N")</c>.</summary>
    public static string NewId()
    {
        Span<byte> bytes = stackalloc byte[16];
        Random.Shared.NextBytes(bytes);
        return Convert.ToHexStringLower(bytes);
    }

    /// <summary>
    /// A version 7 UUID (RFC 9562: 48 bits of Unix milliseconds, then random bits) as 32 hex digits, like
    /// <c>Guid.CreateVersion7(timestamp).ToString("N")</c>: ids made later sort later.
    /// </summary>
    public static string NewVersion7(DateTimeOffset timestamp)
    {
        Span<byte> bytes = stackalloc byte[16];
        Random.Shared.NextBytes(bytes[6..]);
        Span<byte> millis = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(millis, timestamp.ToUnixTimeMilliseconds());
        millis[2..].CopyTo(bytes);
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x70);
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return Convert.ToHexStringLower(bytes);
    }
}
