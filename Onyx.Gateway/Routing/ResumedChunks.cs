using System.Text.Json.Nodes;

namespace Onyx.Gateway.Routing;

/// <summary>
/// Rewrites the chunks of a continued answer so the seam does not show: the first chunk's <c>id</c>, <c>created</c> and
/// <c>system_fingerprint</c>, no second <c>role</c>; and on the chunk that finishes the answer, an <c>x_onyx</c>
/// field saying where and how it was resumed, for clients that care (OpenAI's SDKs keep unknown fields aside).
/// Only continued answers pay for this parse; every other chunk is forwarded as the upstream sent it.
/// </summary>
internal static class ResumedChunks
{
    public static byte[] Rewrite(ReadOnlyMemory<byte> chunk, ChunkIdentity identity, IReadOnlyList<ResumeInfo>? resumes)
    {
        var node = JsonNode.Parse(chunk.Span)!.AsObject();
        if (identity.Id is { } id)
        {
            node["id"] = id;
        }
        if (identity.Created is { } created)
        {
            node["created"] = created;
        }
        if (identity.SystemFingerprint is { } fingerprint)
        {
            node["system_fingerprint"] = fingerprint;
        }
        else
        {
            node.Remove("system_fingerprint");
        }
        if (node["choices"] is JsonArray choices)
        {
            foreach (var choice in choices)
            {
                (choice?["delta"] as JsonObject)?.Remove("role");
            }
        }
        if (resumes is not null)
        {
            var list = new JsonArray();
            foreach (var resume in resumes)
            {
                list.Add(new JsonObject
                {
                    ["from"] = resume.From,
                    ["to"] = resume.To,
                    ["at_chars"] = resume.AtChars,
                    ["reason"] = resume.Reason,
                    ["how"] = resume.How,
                });
            }
            node["x_onyx"] = new JsonObject { ["resumed"] = list };
        }
        return System.Text.Encoding.UTF8.GetBytes(node.ToJsonString());
    }
}
