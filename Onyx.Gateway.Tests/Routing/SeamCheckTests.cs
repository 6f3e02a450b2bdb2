using Onyx.Gateway.Routing;

namespace Onyx.Gateway.Tests.Routing;

/// <summary>The seam check alone: what a continuing deployment's text proves, fed to it in pieces as a stream would.</summary>
public sealed class SeamCheckTests
{
    private const string Delivered = "The quick brown fox";

    [Theory]
    [InlineData("The quick brown fox", 15)]
    [InlineData("The quick brown fox ", 15)]
    [InlineData("Hello,\n\nWorld", 6)]
    [InlineData("One", 0)]
    [InlineData("", 0)]
    public void PrefillsAllButTheLastWordWithTheSpaceBeforeIt(string delivered, int prefill) =>
        Assert.Equal(prefill, SeamCheck.PrefillLengthFor(delivered));

    [Fact]
    public void TakesTheLastFewCharactersOfTextWithoutSpaces()
    {
        var delivered = "見出し" + new string('字', 60);
        Assert.Equal(delivered.Length - 4, SeamCheck.PrefillLengthFor(delivered));
    }

    [Theory]
    [InlineData(new[] { " fox jumps" }, " jumps")]
    [InlineData(new[] { " f", "o", "x", " jumps" }, " jumps")]
    [InlineData(new[] { " fox" }, "")]
    public void ProvesAContinuationThatWritesTheLastWordAgain(string[] pieces, string rest)
    {
        var seam = new SeamCheck(Delivered, SeamCheck.PrefillLengthFor(Delivered));
        var state = pieces.Aggregate(SeamState.Pending, (_, piece) => seam.Add(piece));
        if (state == SeamState.Pending)
        {
            state = seam.End();
        }

        Assert.Equal(SeamState.Matched, state);
        Assert.Equal("continued", seam.How);
        Assert.Equal(rest, seam.Rest);
    }

    [Fact]
    public void ProvesAModelThatStartedOverAndReplaysNothingTwice()
    {
        var seam = new SeamCheck(Delivered, SeamCheck.PrefillLengthFor(Delivered));

        Assert.Equal(SeamState.Pending, seam.Add("The quick "));
        Assert.Equal(SeamState.Pending, seam.Add("brown fo"));
        Assert.Equal(SeamState.Matched, seam.Add("x jumps"));

        Assert.Equal("replayed", seam.How);
        Assert.Equal(Delivered.Length, seam.MatchedLength);
        Assert.Equal(" jumps", seam.Rest);
    }

    [Theory]
    [InlineData("Certainly! A fox")]
    [InlineData(" dog")]
    [InlineData("The quick red")]
    public void RefusesOtherWords(string text)
    {
        var seam = new SeamCheck(Delivered, SeamCheck.PrefillLengthFor(Delivered));
        Assert.Equal(SeamState.Diverged, seam.Add(text));
        Assert.NotNull(seam.Divergence);
    }

    [Fact]
    public void RefusesAnAnswerThatEndsBeforeReachingWhatTheClientHas()
    {
        var seam = new SeamCheck(Delivered, 0);
        Assert.Equal(SeamState.Pending, seam.Add("The quick"));
        Assert.Equal(SeamState.Diverged, seam.End());
        Assert.Contains("ended before", seam.Divergence);
    }

    [Fact]
    public void AReplayMayOnlyReproduce()
    {
        // No prefill: the deployment was asked the question again; a continuation of the words is no proof.
        var seam = new SeamCheck(Delivered, 0);
        Assert.Equal(SeamState.Diverged, seam.Add(" fox jumps"));
    }

    [Fact]
    public void RefusesAToolCallWhereTheClientHasText()
    {
        var seam = new SeamCheck(Delivered, SeamCheck.PrefillLengthFor(Delivered));
        Assert.Equal(SeamState.Diverged, seam.Reject("a tool call"));
    }

    [Fact]
    public void WaitsWhenTheOverlapIsAlsoTheAnswersBeginningUntilOneReadingFails()
    {
        // The last word is also how the answer began: " la" continues, "la la" replays.
        const string delivered = "la la";
        var seam = new SeamCheck(delivered, SeamCheck.PrefillLengthFor(delivered));
        Assert.Equal(2, seam.PrefillLength);

        Assert.Equal(SeamState.Matched, seam.Add(" la la"));
        Assert.Equal("continued", seam.How);
        Assert.Equal(" la", seam.Rest);
    }
}
