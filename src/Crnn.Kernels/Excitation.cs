using ILGPU;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>The sizes of a squeeze-excite block: x is [Batch, Channels, Spatial], squeezed to Squeeze channels.</summary>
public struct ExcitationShape
{
    public int Batch, Channels, Squeeze, Spatial;

    public readonly long Length => (long)Batch * Channels * Spatial;
    public readonly override string ToString() => $"[{Batch},{Channels},{Spatial}] squeezed to {Squeeze}";
}

/// <summary>
/// Squeeze-excite for the gpu policy, y = x · hardsigmoid(W2·relu(W1·mean(x) + b1) + b2), as three launches for a
/// training step instead of eighteen: the forward and the input gradient as one group per image (the pooled,
/// squeezed and gate vectors in shared memory), and the weight gradients as one thread per weight summing over
/// the images in order (the same bits for any grid). W1 is [squeeze, channels], W2 [channels, squeeze] (1×1
/// convolution weights). The host policy runs the block as separate host operations (or fused for inference,
/// <see cref="ChannelScale.SqueezeExcite"/>).
/// </summary>
public sealed class Excitation
{
    /// <summary>Channels + squeeze channels the shared memory holds (8 KiB; PaddleOCR's widest block, 960 + 240, fits).
    /// Static, not dynamic: with dynamic shared memory the model's forward went wrong under PoCL (logits 0.68 relative
    /// from float64) while the kernel tests, one width per loaded kernel, passed; the cause was not pinned down.</summary>
    public const int MaxVector = 2048;

    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ExcitationShape> _forward;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ExcitationShape> _backward;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ExcitationShape> _weightGradient;

    public Excitation(Device device)
    {
        _device = device;
        var acc = device.Accelerator;
        _forward = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ExcitationShape>(ForwardKernel);
        _backward = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ExcitationShape>(BackwardKernel);
        _weightGradient = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ExcitationShape>(WeightGradientKernel);
    }

    /// <summary>
    /// y = x·gate and the vectors the backward needs: pooled = mean(x) [B, C], squeezed = W1·pooled + b1 and
    /// hidden = relu(squeezed) [B, S], excited = W2·hidden + b2 and gate = hardsigmoid(excited) [B, C].
    /// </summary>
    public void Forward(ArrayView<float> x, ArrayView<float> w1, ArrayView<float> b1, ArrayView<float> w2, ArrayView<float> b2,
        ArrayView<float> pooled, ArrayView<float> squeezed, ArrayView<float> hidden, ArrayView<float> excited, ArrayView<float> gate,
        ArrayView<float> y, ExcitationShape s)
    {
        Check(s, (x, s.Length, "x"), (y, s.Length, "y"), (w1, (long)s.Squeeze * s.Channels, "w1"), (b1, s.Squeeze, "b1"),
            (w2, (long)s.Channels * s.Squeeze, "w2"), (b2, s.Channels, "b2"), (pooled, (long)s.Batch * s.Channels, "pooled"),
            (squeezed, (long)s.Batch * s.Squeeze, "squeezed"), (hidden, (long)s.Batch * s.Squeeze, "hidden"),
            (excited, (long)s.Batch * s.Channels, "excited"), (gate, (long)s.Batch * s.Channels, "gate"));
        var grid = PerImage(s);
        double flops = 2.0 * s.Length + 4.0 * s.Batch * s.Channels * s.Squeeze;
        if (_device.Launch(nameof(ForwardKernel), grid, (long)s.Batch * grid.GroupDim.X, flops, 8.0 * s.Length))
            _forward(grid, x, w1, b1, w2, b2, pooled, squeezed, hidden, excited, gate, y, s);
    }

    /// <summary>
    /// Gradients of <see cref="Forward"/> for output gradient dy: dx (overwritten), dw1, db1, dw2, db2 (overwritten),
    /// through the scratch vectors dExcited [B, C] and dHidden [B, S]. dx may not be dy.
    /// </summary>
    public void Backward(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> w1, ArrayView<float> w2,
        ArrayView<float> pooled, ArrayView<float> squeezed, ArrayView<float> hidden, ArrayView<float> excited, ArrayView<float> gate,
        ArrayView<float> dExcited, ArrayView<float> dHidden, ArrayView<float> dx,
        ArrayView<float> dw1, ArrayView<float> db1, ArrayView<float> dw2, ArrayView<float> db2, ExcitationShape s)
    {
        long rows = (long)s.Batch * s.Channels, hiddenRows = (long)s.Batch * s.Squeeze, weights = (long)s.Squeeze * s.Channels;
        Check(s, (x, s.Length, "x"), (dy, s.Length, "dy"), (dx, s.Length, "dx"), (w1, weights, "w1"), (w2, weights, "w2"),
            (pooled, rows, "pooled"), (squeezed, hiddenRows, "squeezed"), (hidden, hiddenRows, "hidden"), (excited, rows, "excited"),
            (gate, rows, "gate"), (dExcited, rows, "dExcited"), (dHidden, hiddenRows, "dHidden"),
            (dw1, weights, "dw1"), (db1, s.Squeeze, "db1"), (dw2, weights, "dw2"), (db2, s.Channels, "db2"));
        var grid = PerImage(s);
        double flops = 4.0 * s.Length + 4.0 * s.Batch * s.Channels * s.Squeeze;
        if (_device.Launch(nameof(BackwardKernel), grid, (long)s.Batch * grid.GroupDim.X, flops, 12.0 * s.Length))
            _backward(grid, x, dy, w1, w2, squeezed, excited, gate, dExcited, dHidden, dx, s);
        long outputs = 2 * weights + s.Squeeze + s.Channels;
        double weightFlops = 2.0 * s.Batch * outputs;
        if (_device.Launch(nameof(WeightGradientKernel), outputs, weightFlops, 8.0 * s.Batch * outputs, out var weightGrid))
            _weightGradient(weightGrid, dExcited, hidden, dHidden, pooled, dw1, db1, dw2, db2, s);
    }

    /// <summary>One group per image (groups loop over the images when there are more images than groups).</summary>
    KernelConfig PerImage(ExcitationShape s)
    {
        if (_device.UsesHost) throw new NotSupportedException("the fused squeeze-excite kernels are the gpu policy's (host: separate host operations)");
        if (s.Channels + s.Squeeze > MaxVector)
            throw new NotSupportedException($"squeeze-excite of {s.Channels} channels squeezed to {s.Squeeze}: the fused kernels hold at most {MaxVector} in all");
        return _device.Groups(Math.Min(s.Batch, Math.Max(_device.MaxGroups, 1)), _device.GroupSize);
    }

    static void Check(ExcitationShape s, params ReadOnlySpan<(ArrayView<float> View, long Expected, string Name)> operands)
    {
        if (s.Batch < 1 || s.Channels < 1 || s.Squeeze < 1 || s.Spatial < 1) throw new ArgumentException($"squeeze-excite sizes must be positive: {s}");
        if (s.Length > int.MaxValue) throw new ArgumentException($"squeeze-excite tensor {s} exceeds the 2^31 element limit");
        foreach (var (view, expected, name) in operands)
            if (view.Length != expected) throw new ArgumentException($"{name} has {view.Length} elements, expected {expected} for squeeze-excite {s}");
    }

    static void ForwardKernel(ArrayView<float> x, ArrayView<float> w1, ArrayView<float> b1, ArrayView<float> w2, ArrayView<float> b2,
        ArrayView<float> pooled, ArrayView<float> squeezed, ArrayView<float> hidden, ArrayView<float> excited, ArrayView<float> gate,
        ArrayView<float> y, ExcitationShape s)
    {
        var shared = SharedMemory.Allocate<float>(MaxVector); // [channels]: pooled, then the gate; [squeeze]: hidden
        int tid = Group.IdxX, threads = Group.DimX, channels = s.Channels, squeeze = s.Squeeze, spatial = s.Spatial;
        for (int n = Grid.IdxX; n < s.Batch; n += Grid.DimX)
        {
            int row = n * channels, hiddenRow = n * squeeze;
            for (int c = tid; c < channels; c += threads)
            {
                int start = (row + c) * spatial;
                float sum = 0f;
                for (int i = 0; i < spatial; i++) sum += x[start + i];
                float mean = sum / spatial;
                shared[c] = mean;
                pooled[row + c] = mean;
            }
            Group.Barrier();
            for (int j = tid; j < squeeze; j += threads)
            {
                float acc = 0f;
                for (int c = 0; c < channels; c++) acc += w1[j * channels + c] * shared[c];
                float z = acc + b1[j];
                squeezed[hiddenRow + j] = z;
                float h = Activations.Apply((int)Activation.Relu, z);
                hidden[hiddenRow + j] = h;
                shared[channels + j] = h;
            }
            Group.Barrier(); // the pooled values are read: their slots take the gate
            for (int c = tid; c < channels; c += threads)
            {
                float acc = 0f;
                for (int j = 0; j < squeeze; j++) acc += w2[c * squeeze + j] * shared[channels + j];
                float z = acc + b2[c];
                excited[row + c] = z;
                float g = Activations.Apply((int)Activation.HardSigmoid, z);
                gate[row + c] = g;
                shared[c] = g;
            }
            Group.Barrier();
            int plane = row * spatial, count = channels * spatial;
            for (int e = tid; e < count; e += threads) y[plane + e] = x[plane + e] * shared[e / spatial];
            Group.Barrier(); // the next image's pooled values overwrite the gate
        }
    }

    /// <summary>Per image: dExcited = Σ_positions dy·x · hardsigmoid'(excited), dHidden = W2ᵀ·dExcited · relu'(squeezed),
    /// dPooled = W1ᵀ·dHidden, then dx = dy·gate + dPooled/spatial (the multiply's and the mean's shares).</summary>
    static void BackwardKernel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> w1, ArrayView<float> w2,
        ArrayView<float> squeezed, ArrayView<float> excited, ArrayView<float> gate, ArrayView<float> dExcited, ArrayView<float> dHidden,
        ArrayView<float> dx, ExcitationShape s)
    {
        var shared = SharedMemory.Allocate<float>(MaxVector); // [channels]: dExcited, then dPooled; [squeeze]: dHidden
        int tid = Group.IdxX, threads = Group.DimX, channels = s.Channels, squeeze = s.Squeeze, spatial = s.Spatial;
        for (int n = Grid.IdxX; n < s.Batch; n += Grid.DimX)
        {
            int row = n * channels, hiddenRow = n * squeeze;
            for (int c = tid; c < channels; c += threads)
            {
                int start = (row + c) * spatial;
                float sum = 0f;
                for (int i = 0; i < spatial; i++) sum += dy[start + i] * x[start + i];
                float d = sum * Activations.Derivative((int)Activation.HardSigmoid, excited[row + c]);
                dExcited[row + c] = d;
                shared[c] = d;
            }
            Group.Barrier();
            for (int j = tid; j < squeeze; j += threads)
            {
                float acc = 0f;
                for (int c = 0; c < channels; c++) acc += w2[c * squeeze + j] * shared[c];
                float d = acc * Activations.Derivative((int)Activation.Relu, squeezed[hiddenRow + j]);
                dHidden[hiddenRow + j] = d;
                shared[channels + j] = d;
            }
            Group.Barrier(); // dExcited is read: its slots take dPooled
            for (int c = tid; c < channels; c += threads)
            {
                float acc = 0f;
                for (int j = 0; j < squeeze; j++) acc += w1[j * channels + c] * shared[channels + j];
                shared[c] = acc;
            }
            Group.Barrier();
            int plane = row * spatial, count = channels * spatial;
            for (int e = tid; e < count; e += threads)
            {
                int c = e / spatial;
                dx[plane + e] = dy[plane + e] * gate[row + c] + shared[c] / spatial;
            }
            Group.Barrier();
        }
    }

    /// <summary>One thread per output, in the order dw1 [S, C], db1 [S], dw2 [C, S], db2 [C]: each a sum over the
    /// images in order (dw1 = Σ dHidden·pooledᵀ, dw2 = Σ dExcited·hiddenᵀ, the biases Σ of the gradients).</summary>
    static void WeightGradientKernel(ArrayView<float> dExcited, ArrayView<float> hidden, ArrayView<float> dHidden, ArrayView<float> pooled,
        ArrayView<float> dw1, ArrayView<float> db1, ArrayView<float> dw2, ArrayView<float> db2, ExcitationShape s)
    {
        int channels = s.Channels, squeeze = s.Squeeze, weights = channels * squeeze;
        int outputs = 2 * weights + squeeze + channels, stride = Grid.DimX * Group.DimX;
        for (int o = Grid.GlobalIndex.X; o < outputs; o += stride)
        {
            float sum = 0f;
            if (o < weights)
            {
                int j = o / channels, c = o - j * channels;
                for (int n = 0; n < s.Batch; n++) sum += dHidden[n * squeeze + j] * pooled[n * channels + c];
                dw1[o] = sum;
            }
            else if (o < weights + squeeze)
            {
                int j = o - weights;
                for (int n = 0; n < s.Batch; n++) sum += dHidden[n * squeeze + j];
                db1[j] = sum;
            }
            else if (o < 2 * weights + squeeze)
            {
                int k = o - weights - squeeze, c = k / squeeze, j = k - c * squeeze;
                for (int n = 0; n < s.Batch; n++) sum += dExcited[n * channels + c] * hidden[n * squeeze + j];
                dw2[k] = sum;
            }
            else
            {
                int c = o - 2 * weights - squeeze;
                for (int n = 0; n < s.Batch; n++) sum += dExcited[n * channels + c];
                db2[c] = sum;
            }
        }
    }
}
