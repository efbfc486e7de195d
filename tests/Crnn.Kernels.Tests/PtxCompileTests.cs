using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Xunit;

namespace Crnn.Kernels.Tests;

/// <summary>
/// The CPU accelerator runs kernels as plain .NET code, so it accepts constructs no GPU backend can compile
/// (exceptions, allocations, unsupported library calls). Compiling every kernel to PTX here, with no GPU,
/// catches those before a CUDA user does.
/// </summary>
public class PtxCompileTests
{
    /// <summary>Every kernel entry point: the static methods named *Kernel in Crnn.Kernels.</summary>
    public static TheoryData<string> KernelNames()
    {
        var data = new TheoryData<string>();
        foreach (var m in AllKernels()) data.Add($"{m.DeclaringType!.Name}.{m.Name}");
        return data;
    }

    static IEnumerable<MethodInfo> AllKernels() =>
        typeof(Device).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly))
            .Where(m => m.Name.EndsWith("Kernel", StringComparison.Ordinal) && m.ReturnType == typeof(void));

    [Theory]
    [MemberData(nameof(KernelNames))]
    public void CompilesToPtx(string name)
    {
        var method = AllKernels().Single(m => $"{m.DeclaringType!.Name}.{m.Name}" == name);
        using var context = Context.Create(b => b.Cuda().EnableAlgorithms());
        using var backend = new PTXBackend(context, CudaArchitecture.SM_75, CudaInstructionSet.ISA_75, null!);
        var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
        var compiled = backend.Compile(entry, KernelSpecialization.Empty);
        Assert.Contains(".entry", ((PTXCompiledKernel)compiled).PTXAssembly);
    }

    [Fact]
    public void FindsTheKernels() => Assert.True(AllKernels().Count() >= 5);
}
