using BenchmarkDotNet.Running;

namespace Crnn.Bench;

/// <summary>
/// Kernel benchmarks at the seed model's real shapes (batch 32 unless a benchmark says otherwise).
/// Run: dotnet run -c Release --project bench/Crnn.Bench -- --filter '*'   (see the README for more).
/// </summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, BenchConfig.Create());
}
