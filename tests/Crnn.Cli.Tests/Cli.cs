using Xunit;

namespace Crnn.Cli.Tests;

/// <summary>Runs the crnn command in process with stdout and stderr captured (the tests run one at a time).</summary>
public static class Cli
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (output, error) = (new StringWriter(), new StringWriter());
        var (savedOut, savedError) = (Console.Out, Console.Error);
        Console.SetOut(output);
        Console.SetError(error);
        try { return (Program.Main(args), output.ToString(), error.ToString()); }
        finally
        {
            Console.SetOut(savedOut);
            Console.SetError(savedError);
        }
    }

    /// <summary>A command line split at spaces (for arguments without spaces).</summary>
    public static (int Code, string Out, string Err) Run(string commandLine) =>
        Run(commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries));

    /// <summary>A user error: exit code 2 and a single "error: ..." line containing <paramref name="message"/>.</summary>
    public static void AssertUserError((int Code, string Out, string Err) result, string message)
    {
        Assert.Equal(2, result.Code);
        var text = result.Err.TrimEnd('\n');
        Assert.StartsWith("error: ", text);
        Assert.DoesNotContain("\n", text);
        Assert.Contains(message, text);
    }
}
