using System.Diagnostics;
using System.Reflection;

namespace Crnn.TestRunner;

/// <summary>
/// <c>crnn-kit [--filter TEXT]... [--list] [--verbose]</c> runs the xunit tests of the test projects
/// in-process; <c>crnn-kit crnn ARGS</c> is the crnn CLI itself. One self-contained build for a machine
/// without .NET. Last line of a test run: "N passed, N failed[, N skipped]" (as tools/test.sh prints).
/// </summary>
public static class Program
{
    /// <summary>The test assemblies, in the order the solution's tests build on each other.</summary>
    static readonly string[] TestAssemblies = ["Crnn.Kernels.Tests", "Crnn.Engine.Tests", "Crnn.Cli.Tests"];

    const string Usage = """
        usage: crnn-kit [--filter TEXT]... [--list] [--verbose]   run the tests (CRNN_TEST_DEVICE picks the device)
               crnn-kit crnn ARGS...                             the crnn command (train, bench, devices, ...)
          --filter TEXT  only tests whose name "Namespace.Class.Method(args)" contains TEXT (any of several)
          --list         print the selected tests' names and their count, run nothing
          --verbose      one line per test with its time, not only failures
        """;

    public static int Main(string[] args)
    {
        if (args is ["crnn", .. var cliArgs]) return Crnn.Cli.Program.Main(cliArgs);

        var filters = new List<string>();
        bool list = false, verbose = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--filter" when i + 1 < args.Length: filters.Add(args[++i]); break;
                case "--list": list = true; break;
                case "--verbose": verbose = true; break;
                case "-h" or "--help": Console.Out.Write(Usage); return 0;
                default:
                    Console.Error.WriteLine($"error: unknown argument '{args[i]}' (--filter needs a value)\n{Usage}");
                    return 2;
            }
        }

        var tests = TestAssemblies.Select(name => Assembly.Load(new AssemblyName(name)))
            .SelectMany(TestDiscovery.Discover)
            .Where(t => filters.Count == 0 || filters.Any(f => t.DisplayName.Contains(f, StringComparison.Ordinal)))
            .ToList();
        if (list)
        {
            foreach (var t in tests) Console.WriteLine(t.DisplayName);
            Console.WriteLine($"{tests.Count} tests");
            return 0;
        }
        return RunAll(tests, verbose, Console.Out);
    }

    static int RunAll(IReadOnlyList<TestCase> tests, bool verbose, TextWriter log)
    {
        var clock = Stopwatch.StartNew();
        int passed = 0, failed = 0, skipped = 0;
        // Classes in order, one summary line each, so a slow or hanging class shows in the log.
        foreach (var group in tests.GroupBy(t => t.Class))
        {
            var classClock = Stopwatch.StartNew();
            int classFailed = 0, classCount = 0;
            using var fixtures = new ClassFixtures();
            foreach (var test in group)
            {
                var result = TestExecution.Run(test, fixtures);
                classCount++;
                switch (result.Outcome)
                {
                    case Outcome.Passed: passed++; break;
                    case Outcome.Skipped: skipped++; break;
                    case Outcome.Failed: failed++; classFailed++; break;
                }
                if (result.Outcome == Outcome.Failed)
                    log.WriteLine($"  FAIL {test.DisplayName} ({result.Duration.TotalSeconds:F2} s)\n{Indent(result.Message)}{Indent(result.Output, "output: ")}");
                else if (result.Outcome == Outcome.Skipped)
                    log.WriteLine($"  SKIP {test.DisplayName}: {result.Message}");
                else if (verbose)
                    log.WriteLine($"  pass {test.DisplayName} ({result.Duration.TotalSeconds:F2} s){Indent(result.Output, "output: ")}");
            }
            log.WriteLine($"{group.Key.FullName}: {classCount} tests, {classFailed} failed ({classClock.Elapsed.TotalSeconds:F1} s)");
        }
        log.WriteLine($"total time {clock.Elapsed.TotalSeconds:F1} s");
        string line = $"{passed} passed, {failed} failed";
        if (skipped > 0) line += $", {skipped} skipped";
        log.WriteLine(line);
        if (tests.Count == 0) Console.Error.WriteLine("no test ran");
        return failed == 0 && tests.Count > 0 ? 0 : 1;
    }

    /// <summary>The text indented under its test line, after a newline; nothing for no text.</summary>
    static string Indent(string? text, string label = "") =>
        string.IsNullOrWhiteSpace(text) ? "" :
        (label.Length > 0 ? "\n" : "") + string.Join("\n", text.TrimEnd().Split('\n').Select((l, i) => "      " + (i == 0 ? label : "") + l.TrimEnd('\r')));
}
