using System.CommandLine;

namespace Crnn.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        // Bare `crnn` shows the help rather than a "required command" error.
        var parsed = BuildRoot().Parse(args.Length == 0 ? ["--help"] : args);
        if (parsed.Errors.Count > 0)
        {
            // A value that does not parse (--steps abc, --lr 1e99) or an unknown option: one line, like every user error.
            string messages = string.Join(" ", parsed.Errors.Select(e => e.Message.Split('\n')[0]));
            Console.Error.WriteLine($"error: {messages} (see '{string.Join(' ', ["crnn", .. CommandPath(parsed.CommandResult)])} --help')");
            return 2;
        }
        return parsed.Invoke();
    }

    static IEnumerable<string> CommandPath(System.CommandLine.Parsing.CommandResult result) =>
        result.Parent is System.CommandLine.Parsing.CommandResult parent ? [.. CommandPath(parent), result.Command.Name] : [];

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("crnn: train and run a CRNN text-line recognizer on CUDA, OpenCL or CPU (ILGPU).");
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(PredictCommand.CreatePredict());
        root.Subcommands.Add(PredictCommand.CreateEval());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(DevicesCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(ImportCommand.Create());
        root.Subcommands.Add(SynthCommand.Create());
        return root;
    }
}
