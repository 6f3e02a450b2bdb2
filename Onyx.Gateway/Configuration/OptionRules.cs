using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Reflection;

namespace Onyx.Gateway.Configuration;

/// <summary>
/// The configuration section an options class binds (<c>Onyx:Routing</c>), so that a rule it breaks is reported under
/// the key an operator writes, not the property path the generated validator knows (<c>OnyxOptions.Routing.QueueLimit</c>).
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
internal sealed class OptionsSectionAttribute(string section) : Attribute
{
    public string Section { get; } = section;
}

/// <summary>
/// A check of one option value, written on the option and run by the validator the <c>[OptionsValidator]</c> source
/// generator writes. Its own attributes rather than <see cref="RangeAttribute"/>: the generator's copy of that one
/// drops <see cref="ValidationAttribute.ErrorMessage"/>, so its message could name neither the key nor the rule.
/// </summary>
internal abstract class OptionRuleAttribute : ValidationAttribute
{
    /// <summary>Why the rule is there, when that is not plain (said after the rule).</summary>
    public string? Why { get; set; }

    /// <summary>What the value must be, after its key: "must be positive".</summary>
    protected abstract string Rule(object value);

    protected abstract bool Holds(object value);

    protected override ValidationResult? IsValid(object? value, ValidationContext context) =>
        value is null || Holds(value)
            ? ValidationResult.Success
            : new ValidationResult($"{KeyOf(context)} {Rule(value)}{(Why is null ? "" : ": " + Why)}.");

    private static string KeyOf(ValidationContext context) =>
        context.ObjectType.GetCustomAttribute<OptionsSectionAttribute>() is { } section
            ? $"{section.Section}:{context.MemberName}"
            : context.DisplayName;

    protected static int Sign(object value) => value switch
    {
        TimeSpan span => span.CompareTo(TimeSpan.Zero),
        int number => number.CompareTo(0),
        long number => number.CompareTo(0L),
        _ => throw new InvalidOperationException($"{value.GetType().Name} is not a number or a duration."),
    };
}

/// <summary>A duration or number above zero.</summary>
internal sealed class PositiveAttribute : OptionRuleAttribute
{
    protected override string Rule(object value) => "must be positive";

    protected override bool Holds(object value) => Sign(value) > 0;
}

/// <summary>A duration or number of zero or more.</summary>
internal sealed class NotNegativeAttribute : OptionRuleAttribute
{
    protected override string Rule(object value) => "must not be negative";

    protected override bool Holds(object value) => Sign(value) >= 0;
}

/// <summary>A number of at least <paramref name="minimum"/>, and at most <paramref name="maximum"/> when one is given.</summary>
internal sealed class BetweenAttribute(long minimum, long maximum = long.MaxValue) : OptionRuleAttribute
{
    /// <summary>The values' unit, said after the bound ("bytes").</summary>
    public string? Unit { get; set; }

    protected override string Rule(object value) => (maximum == long.MaxValue
        ? $"must be at least {minimum.ToString(CultureInfo.InvariantCulture)}"
        : $"must be from {minimum.ToString(CultureInfo.InvariantCulture)} to {maximum.ToString(CultureInfo.InvariantCulture)}")
        + (Unit is null ? "" : " " + Unit);

    protected override bool Holds(object value) => Convert.ToInt64(value, CultureInfo.InvariantCulture) is var number && number >= minimum && number <= maximum;
}

/// <summary>A duration from <paramref name="minimum"/> to <paramref name="maximum"/> (<c>c</c> format: <c>00:00:01</c>).</summary>
internal sealed class DurationBetweenAttribute(string minimum, string maximum) : OptionRuleAttribute
{
    private readonly TimeSpan _minimum = TimeSpan.Parse(minimum, CultureInfo.InvariantCulture);
    private readonly TimeSpan _maximum = TimeSpan.Parse(maximum, CultureInfo.InvariantCulture);

    protected override string Rule(object value) => _maximum == TimeSpan.MaxValue
        ? $"must be at least {_minimum:c}"
        : $"must be between {_minimum:c} and {_maximum:c}, not {value:c}";

    protected override bool Holds(object value) => value is TimeSpan span && span >= _minimum && span <= _maximum;
}

/// <summary>A string with something in it.</summary>
internal sealed class NotBlankAttribute : OptionRuleAttribute
{
    protected override string Rule(object value) => "must not be empty";

    protected override bool Holds(object value) => value is string text && !string.IsNullOrWhiteSpace(text);
}
