using System.CommandLine;
using Crnn.Kernels;

namespace Crnn.Cli;

public static class Program
{
    public static int Main(string[] args) => BuildRoot().Parse(args).Invoke();

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("crnn: train and run a CRNN text-line recognizer on CUDA, OpenCL or CPU (ILGPU).");
        root.Subcommands.Add(DevicesCommand.Create());
        return root;
    }
}
