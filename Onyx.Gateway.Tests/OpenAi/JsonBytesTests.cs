using System.Text;
using System.Text.Json;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Tests.OpenAi;

public sealed class JsonBytesTests
{
    [Fact]
    public void EachDocumentComesOutWholeAndAlone()
    {
        var first = JsonBytes.Write("one", static (json, s) =>
        {
            json.WriteStartObject();
            json.WriteString("name", s);
            json.WriteEndObject();
        });
        var second = JsonBytes.Write(2, static (json, n) =>
        {
            json.WriteStartArray();
            json.WriteNumberValue(n);
            json.WriteEndArray();
        });

        Assert.Equal("""{"name":"one"}""", Encoding.UTF8.GetString(first));
        Assert.Equal("[2]", Encoding.UTF8.GetString(second));
    }

    [Fact]
    public void ADocumentWrittenInsideAnotherKeepsItsOwnBuffer()
    {
        var outer = JsonBytes.Write("outer", static (json, s) =>
        {
            json.WriteStartObject();
            json.WriteString("name", s);
            var inner = JsonBytes.Write("inner", static (innerJson, t) => innerJson.WriteStringValue(t));
            json.WriteString("inner", Encoding.UTF8.GetString(inner));
            json.WriteEndObject();
        });

        Assert.Equal("""{"name":"outer","inner":"\u0022inner\u0022"}""", Encoding.UTF8.GetString(outer));
    }

    [Fact]
    public void AWriterThatThrowsLeavesNothingBehindForTheNextDocument()
    {
        Assert.Throws<InvalidOperationException>(() => JsonBytes.Write(0, static (json, _) =>
        {
            json.WriteStartObject();
            json.WriteString("half", "written");
            json.Flush();
            throw new InvalidOperationException("the writer failed");
        }));

        var next = JsonBytes.Write(true, static (json, b) => json.WriteBooleanValue(b));

        Assert.Equal("true", Encoding.UTF8.GetString(next));
    }

    [Fact]
    public void ADocumentLargerThanTheKeptBufferComesOutWhole()
    {
        var text = new string('x', 400_000);
        var large = JsonBytes.Write(text, static (json, s) => json.WriteStringValue(s));
        var small = JsonBytes.Write("after", static (json, s) => json.WriteStringValue(s));

        Assert.Equal(text, JsonSerializer.Deserialize<string>(large));
        Assert.Equal("\"after\"", Encoding.UTF8.GetString(small));
    }
}
