using System.Text;

namespace Onyx.Gateway.Routing;

/// <summary>
/// Proves the seam between what the client already has (<c>delivered</c>) and what a deployment asked to continue it
/// sends back, before any of it reaches the client. Two readings are kept until one is proven or both fail:
/// <list type="bullet">
/// <item><b>continued</b>: the deployment was given the delivered text minus its last word as a prefill, and must first
/// write that word (the <see cref="Overlap"/>) exactly — a model that really continues does; one that ignores the
/// prefill and answers anew, in other words, does not;</item>
/// <item><b>replayed</b>: the deployment started the answer over (a replay, or a model that ignored the prefill), and
/// must reproduce the delivered text exactly.</item>
/// </list>
/// What follows the proven part is what the client gets next. Anything else — another beginning, a tool call where the
/// client has text, an answer that ends too soon — is a divergence, and the client gets a clean error, never a splice.
/// </summary>
/// <remarks>
/// Hand-written: no library compares a live token stream against a known prefix. The comparison is character by
/// character as text arrives (each character is looked at once), and nothing is kept beyond the text needed.
/// </remarks>
internal sealed class SeamCheck
{
    /// <summary>A last word longer than this (a URL, text without spaces) is not the overlap; its last few characters are.</summary>
    private const int MaxOverlapChars = 48;

    /// <summary>The overlap when the delivered text has no usable word boundary near its end.</summary>
    private const int FallbackOverlapChars = 4;

    private readonly string _delivered;
    private readonly StringBuilder _seen = new();
    private bool _continued;
    private bool _replayed;

    /// <param name="delivered">The answer text the client already has.</param>
    /// <param name="prefillLength">How much of it the deployment was given as a prefill (0: none, a replay).</param>
    public SeamCheck(string delivered, int prefillLength)
    {
        _delivered = delivered;
        PrefillLength = prefillLength;
        _replayed = true;
        _continued = prefillLength > 0;
        State = delivered.Length == 0 ? SeamState.Matched : SeamState.Pending;
    }

    public int PrefillLength { get; }

    /// <summary>The part of the delivered text a continuing deployment must write first.</summary>
    public ReadOnlySpan<char> Overlap => _delivered.AsSpan(PrefillLength);

    public SeamState State { get; private set; }

    /// <summary>How many characters of the new text the proof consumed (they are not sent again).</summary>
    public int MatchedLength { get; private set; }

    /// <summary>Which reading was proven: <c>continued</c> or <c>replayed</c>.</summary>
    public string How { get; private set; } = "";

    /// <summary>Why the seam diverged (for the error the client gets and the log).</summary>
    public string? Divergence { get; private set; }

    /// <summary>Where the prefill should end for <paramref name="delivered"/>: before its last word (with the space before it).</summary>
    public static int PrefillLengthFor(string delivered)
    {
        var i = delivered.Length;
        while (i > 0 && char.IsWhiteSpace(delivered[i - 1]))
        {
            i--;
        }
        while (i > 0 && !char.IsWhiteSpace(delivered[i - 1]))
        {
            i--;
        }
        // A token usually carries the space before its word, so the overlap starts with that space.
        while (i > 0 && char.IsWhiteSpace(delivered[i - 1]))
        {
            i--;
        }
        if (delivered.Length - i <= MaxOverlapChars)
        {
            return i;
        }
        var start = Math.Max(0, delivered.Length - FallbackOverlapChars);
        return start > 0 && char.IsLowSurrogate(delivered[start]) ? start - 1 : start;
    }

    /// <summary>The text after the proven part: what the client gets next (valid once <see cref="SeamState.Matched"/>).</summary>
    public string Rest => _seen.ToString(MatchedLength, _seen.Length - MatchedLength);

    /// <summary>Adds new answer text and checks it against both readings.</summary>
    public SeamState Add(ReadOnlySpan<char> text)
    {
        if (State != SeamState.Pending || text.IsEmpty)
        {
            if (State == SeamState.Matched)
            {
                _seen.Append(text);
            }
            return State;
        }
        var at = _seen.Length;
        _seen.Append(text);
        var overlap = Overlap;
        for (var i = 0; i < text.Length && (_continued || _replayed); i++)
        {
            var position = at + i;
            _continued &= position >= overlap.Length || text[i] == overlap[position];
            _replayed &= position >= _delivered.Length || text[i] == _delivered[position];
        }
        return Settle(final: false);
    }

    /// <summary>The answer finished (a finish reason) while the seam was still pending.</summary>
    public SeamState End() => State == SeamState.Pending ? Settle(final: true) : State;

    /// <summary>Something that is not answer text arrived (a tool call) while the client has text: a divergence.</summary>
    public SeamState Reject(string what)
    {
        if (State == SeamState.Pending)
        {
            Diverge($"it sent {what} where the answer had text");
        }
        return State;
    }

    private SeamState Settle(bool final)
    {
        var length = _seen.Length;
        var replayedProven = _replayed && length >= _delivered.Length;
        var continuedProven = _continued && length >= Overlap.Length;
        if (replayedProven)
        {
            // The longer proof wins when both hold (an overlap that is also the answer's own beginning).
            Match("replayed", _delivered.Length);
        }
        else if (continuedProven && (!_replayed || final))
        {
            Match("continued", Overlap.Length);
        }
        else if (!_continued && !_replayed)
        {
            Diverge(PrefillLength > 0
                ? "its answer neither continued the partial answer nor began again with it"
                : "its new answer begins differently");
        }
        else if (final)
        {
            Diverge("its answer ended before reaching the point the client has");
        }
        return State;
    }

    private void Match(string how, int length)
    {
        State = SeamState.Matched;
        How = how;
        MatchedLength = length;
    }

    private void Diverge(string why)
    {
        State = SeamState.Diverged;
        Divergence = why;
    }
}
