using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace Onyx.Gateway.Auth;

/// <summary>
/// How API keys are made, named and stored: only a key's SHA-256 is ever kept (in Redis or the config file), and
/// hashes are compared in constant time.
/// </summary>
internal static class ApiKeys
{
    public const string Prefix = "sk-";

    /// <summary>A new key: <c>sk-</c> and 256 random bits, base64url.</summary>
    public static string Generate() => Prefix + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    /// <summary>The key's SHA-256 as lowercase hex — what <c>sha256sum</c> prints for it.</summary>
    public static string Hash(string key)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(key), hash);
        return Convert.ToHexStringLower(hash);
    }

    public static bool IsHash(string value) =>
        value.Length == SHA256.HashSizeInBytes * 2 && value.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>A name that identifies a key to people without revealing it: <c>sk-...x4Qz</c>.</summary>
    public static string Name(string key) => key.Length >= 16 ? $"{Prefix}...{key[^4..]}" : $"{Prefix}...";

    public static bool HashesEqual(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(a), Encoding.ASCII.GetBytes(b));
}
