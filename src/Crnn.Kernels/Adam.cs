using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// Adam hyper-parameters. <see cref="WeightDecay"/> is an L2 term added to the gradient (Paddle's L2Decay,
/// PyTorch Adam's weight_decay) unless <see cref="Decoupled"/> is set, which makes it AdamW's p −= lr·wd·p.
/// </summary>
public readonly record struct AdamOptions(float LearningRate, float Beta1 = 0.9f, float Beta2 = 0.999f,
    float Epsilon = 1e-8f, float WeightDecay = 0f, bool Decoupled = false)
{
    public static AdamOptions Adam(float learningRate, float weightDecay = 0f) => new(learningRate, WeightDecay: weightDecay);

    public static AdamOptions AdamW(float learningRate, float weightDecay = 0.01f) => new(learningRate, WeightDecay: weightDecay, Decoupled: true);
}

/// <summary>What one Adam launch needs: the options plus the bias corrections of the step, computed on the host.</summary>
public struct AdamStep
{
    public int Length, Decoupled;
    public float LearningRate, Beta1, Beta2, Epsilon, WeightDecay;
    /// <summary>1/(1−β1^t) and 1/(1−β2^t): m̂ = m·Correction1, v̂ = v·Correction2.</summary>
    public float Correction1, Correction2;

    /// <summary>The launch parameters of step <paramref name="step"/> (1-based) over <paramref name="length"/> parameters.</summary>
    public static AdamStep Create(AdamOptions o, int step, int length) => new()
    {
        Length = length,
        Decoupled = o.Decoupled ? 1 : 0,
        LearningRate = o.LearningRate, Beta1 = o.Beta1, Beta2 = o.Beta2, Epsilon = o.Epsilon, WeightDecay = o.WeightDecay,
        // In double: 1 − 0.999^t loses most of its digits in float for small t.
        Correction1 = (float)(1.0 / (1.0 - Math.Pow(o.Beta1, step))),
        Correction2 = (float)(1.0 / (1.0 - Math.Pow(o.Beta2, step))),
    };
}

/// <summary>
/// Adam and AdamW over one flat parameter buffer (parameters, gradients and both moments share one layout),
/// so a whole model steps in one launch. The gradients may be multiplied by a scale read on the device
/// (the clipping factor of <see cref="GradientNorm"/>); a non-finite scale skips the step.
/// </summary>
public sealed class Adam : IDisposable
{
    readonly Device _device;
    readonly Tensor<float> _one;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamStep> _step;

    public Adam(Device device)
    {
        _device = device;
        _one = device.Upload(new[] { 1f }, 1);
        _step = device.Accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamStep>(StepKernel);
    }

    /// <summary>
    /// One update at step <paramref name="step"/> (1-based): g' = scale·g (+ wd·p for Adam), m = β1·m + (1−β1)·g',
    /// v = β2·v + (1−β2)·g'², p −= lr·m̂/(√v̂ + ε) (after p −= lr·wd·p for AdamW). <paramref name="gradientScale"/>
    /// is an optional one-element device buffer (e.g. <see cref="GradientNorm.Scale"/>); when it holds NaN or
    /// infinity, parameters and moments are left untouched. Gradients are only read.
    /// </summary>
    public void Step(ArrayView<float> parameters, ArrayView<float> gradients, ArrayView<float> m, ArrayView<float> v,
        AdamOptions options, int step, ArrayView<float> gradientScale = default)
    {
        long n = parameters.Length;
        if (gradients.Length != n || m.Length != n || v.Length != n)
            throw new ArgumentException($"Adam buffers differ in length: parameters {n}, gradients {gradients.Length}, m {m.Length}, v {v.Length}");
        if (step < 1) throw new ArgumentException($"Adam step must be 1 or more (1-based), got {step}");
        if (!(options.LearningRate >= 0f) || float.IsInfinity(options.LearningRate)) throw new ArgumentException($"Adam learning rate must be finite and ≥ 0, got {options.LearningRate}");
        if (!(options.Beta1 >= 0f && options.Beta1 < 1f)) throw new ArgumentException($"Adam beta1 must be in [0, 1), got {options.Beta1}");
        if (!(options.Beta2 >= 0f && options.Beta2 < 1f)) throw new ArgumentException($"Adam beta2 must be in [0, 1), got {options.Beta2}");
        if (!(options.Epsilon > 0f)) throw new ArgumentException($"Adam epsilon must be > 0, got {options.Epsilon}");
        if (!(options.WeightDecay >= 0f) || float.IsInfinity(options.WeightDecay)) throw new ArgumentException($"Adam weight decay must be finite and ≥ 0, got {options.WeightDecay}");
        if (gradientScale.IsValid && gradientScale.Length != 1) throw new ArgumentException($"gradient scale must be one element, got {gradientScale.Length}");
        var scale = gradientScale.IsValid ? gradientScale : _one.View;
        var launch = AdamStep.Create(options, step, (int)n);
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "Adam");
            unsafe { HostStep(HostMemory.Pointer(parameters), HostMemory.Pointer(gradients), HostMemory.Pointer(m), HostMemory.Pointer(v), HostMemory.Pointer(scale), launch); }
        }
        else if (_device.Launch(nameof(StepKernel), n, 15.0 * n, 28.0 * n, out var grid))
            _step(grid, parameters, gradients, m, v, scale, launch);
    }

    static void StepKernel(ArrayView<float> p, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v,
        ArrayView<float> scale, AdamStep s)
    {
        float k = scale[0];
        // Non-finite gradients (the clipping scale is NaN then): skip the step rather than poison every weight.
        if (!XMath.IsFinite(k)) return;
        int start = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        float decay = s.LearningRate * s.WeightDecay;
        for (int i = start; i < s.Length; i += stride)
        {
            float pi = p[i], gi = g[i] * k;
            if (s.Decoupled != 0) pi -= decay * pi;
            else gi += s.WeightDecay * pi;
            float mi = s.Beta1 * m[i] + (1f - s.Beta1) * gi;
            float vi = s.Beta2 * v[i] + (1f - s.Beta2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = pi - s.LearningRate * (mi * s.Correction1) / (XMath.Sqrt(vi * s.Correction2) + s.Epsilon);
        }
    }

    /// <summary>The kernel's arithmetic on the host, in parallel over blocks of parameters (same bits).</summary>
    static unsafe void HostStep(float* p, float* g, float* m, float* v, float* scale, AdamStep s)
    {
        float k = *scale;
        if (!float.IsFinite(k) || s.Length == 0) return;
        const int Block = 16384;
        nint pp = (nint)p, pg = (nint)g, pm = (nint)m, pv = (nint)v;
        HostMemory.For((s.Length + Block - 1) / Block, 15L * Block, (first, end) =>
        {
            float* p = (float*)pp, g = (float*)pg, m = (float*)pm, v = (float*)pv;
            float decay = s.LearningRate * s.WeightDecay;
            for (long i = (long)first * Block, stop = Math.Min((long)end * Block, s.Length); i < stop; i++)
            {
                float pi = p[i], gi = g[i] * k;
                if (s.Decoupled != 0) pi -= decay * pi;
                else gi += s.WeightDecay * pi;
                float mi = s.Beta1 * m[i] + (1f - s.Beta1) * gi;
                float vi = s.Beta2 * v[i] + (1f - s.Beta2) * gi * gi;
                m[i] = mi;
                v[i] = vi;
                p[i] = pi - s.LearningRate * (mi * s.Correction1) / (MathF.Sqrt(vi * s.Correction2) + s.Epsilon);
            }
        });
    }

    public void Dispose() => _one.Dispose();
}
