using Crnn.Engine.Data;
using Crnn.Engine.Training;
using Crnn.Kernels;
using Xunit;
using Xunit.Abstractions;

namespace Crnn.Engine.Tests;

/// <summary>
/// Runs only where the gpu kernel policy runs at the seed model's size in reasonable time: on a CUDA or OpenCL
/// test device (CRNN_TEST_DEVICE=cuda|opencl; <c>tools/pocl-test.sh</c> runs the suite on PoCL's OpenCL).
/// The CPU accelerator runs the GPU kernels too (the GPU-like kernel-test device), but every Group.Barrier
/// there is an OS-level wait of 256 threads (≈ 10–40 ms), and one seed-model step holds tens of thousands:
/// one forward/backward at batch 4 did not finish in 10 minutes.
/// </summary>
public sealed class GpuModelScaleFactAttribute : FactAttribute
{
    public GpuModelScaleFactAttribute()
    {
        if (!OnGpuBackend)
            Skip = "needs CRNN_TEST_DEVICE=cuda or opencl (the gpu policy at model scale; bash tools/pocl-test.sh runs it on PoCL)";
    }

    public static bool OnGpuBackend =>
        Environment.GetEnvironmentVariable("CRNN_TEST_DEVICE")?.Trim().ToLowerInvariant() is { } d
        && (d.StartsWith("cuda") || d.StartsWith("opencl") || d.StartsWith("cl"));
}

/// <summary>Training under the gpu policy (the test device) against the host policy (the CPU accelerator).</summary>
public class GpuPolicyTests(ITestOutputHelper output)
{
    static double[] TrainLosses(Kernels.Device device, int steps)
    {
        using var model = new CrnnModel(device, new ModelConfig());
        model.Initialize(seed: 11);
        using var source = new SyntheticSource(CharDictionary.Default, seed: 12);
        var options = new TrainOptions { Steps = steps, BatchSize = 4, LogEvery = 1, ValidateEvery = 0, ClipNorm = 5f, DecayFraction = 0 };
        string folder = Directory.CreateTempSubdirectory("crnn-gpu-policy-").FullName;
        try
        {
            using var trainer = new Trainer(model, CharDictionary.Default, source, options, folder, validation: null);
            var losses = new double[steps];
            for (int i = 0; i < steps; i++) losses[i] = trainer.TrainStep();
            return losses;
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [GpuModelScaleFact]
    public void TwentyStepsMatchTheHostPolicyAndRepeatBitIdentically()
    {
        using var gpu = Kernels.Device.Open(Environment.GetEnvironmentVariable("CRNN_TEST_DEVICE"), "gpu");
        using var host = Kernels.Device.Open("cpu", "host");
        const int steps = 20;
        var first = TrainLosses(gpu, steps);
        var second = TrainLosses(gpu, steps);
        var reference = TrainLosses(host, steps);
        double worst = 0;
        for (int i = 0; i < steps; i++)
        {
            double rel = Math.Abs(first[i] - reference[i]) / Math.Abs(reference[i]);
            worst = Math.Max(worst, rel);
            output.WriteLine($"step {i + 1}: gpu {first[i]:R} host {reference[i]:R} rel {rel:E2}");
        }
        output.WriteLine($"largest relative difference {worst:E2}");
        Assert.Equal(first, second);
        // Step 1 sees the same weights and batch under both policies: only rounding differs.
        Assert.True(Math.Abs(first[0] - reference[0]) <= 1e-6 * Math.Abs(reference[0]), $"step 1: gpu {first[0]} host {reference[0]}");
        // Later steps drift apart: whenever an activation input lands within float32 rounding of its kink, the
        // two policies take different branches and the first layers' gradients differ by ~1 %, which Adam carries
        // on. Measured on PoCL (2026-12-03): ≤ 3e-6 for steps 1–4, then up to 1.2e-3 (step 9).
        Assert.True(worst <= 5e-3, $"gpu and host losses differ by up to {worst:E2} relative");
    }
}
