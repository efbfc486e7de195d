using System.CommandLine;

namespace Crnn.Cli;

public static class Program
{
    public static int Main(string[] args) => BuildRoot().Parse(args).Invoke();

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("crnn: train and run a CRNN text-line recognizer on CUDA, OpenCL or CPU (ILGPU).");
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(PredictCommand.CreatePredict());
        root.Subcommands.Add(PredictCommand.CreateEval());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(DevicesCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(SynthCommand.Create());
        return root;
    }
}
