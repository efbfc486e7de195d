using System.CommandLine;
using Crnn.Engine.Data;

namespace Crnn.Cli;

/// <summary>The data options train, eval and predict share.</summary>
public static class DataOptions
{
    /// <summary>--case auto|keep|lower</summary>
    public static Option<string> Case()
    {
        var option = new Option<string>("--case")
        {
            Description = "label case: auto (lower-case when the dictionary has no upper-case letter), keep or lower",
            DefaultValueFactory = _ => "auto",
        };
        option.AcceptOnlyFromAmong(LabelCases.Names);
        return option;
    }

    /// <summary>--strict</summary>
    public static Option<bool> Strict(string what = "sample (label or image)") =>
        new("--strict") { Description = $"stop at the first bad {what} instead of skipping it" };
}
