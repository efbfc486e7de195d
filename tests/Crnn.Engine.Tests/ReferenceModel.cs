using Crnn.Kernels;

namespace Crnn.Engine.Tests;

/// <summary>
/// An independent float64 reference of the whole CRNN (MODEL.md), forward and backward, in plain C#.
/// Every layer is a small forward/backward pair written out by hand; nothing is shared with the kernels
/// (only the <see cref="Activation"/> enum names the activation). The engine is checked against it, and
/// its own gradients are checked against finite differences in <c>ReferenceModelTests</c>.
/// </summary>
public sealed class ReferenceModel
{
    /// <summary>BatchNorm epsilon and Paddle's momentum: running ← 0.9·running + 0.1·batch.</summary>
    public const double BnEpsilon = 1e-5, BnMomentum = 0.9;

    /// <summary>What one run returns.</summary>
    /// <param name="Logits">[B, T, C] head output, before the log-softmax.</param>
    /// <param name="Losses">Per-sample CTC loss −log p(label | image); +inf when the label cannot be aligned
    /// (0 with zeroInfinity).</param>
    /// <param name="Loss">Mean of <paramref name="Losses"/> over the batch.</param>
    /// <param name="Gradients">d(mean loss)/d(parameter), in ParameterLayout's flat order; empty from
    /// <see cref="Forward"/>.</param>
    /// <param name="Buffers">BatchNorm running statistics after the run (a copy; unchanged in evaluation mode).</param>
    public sealed record Result(double[] Logits, double[] Losses, double Loss, double[] Gradients, double[] Buffers);

    readonly ModelConfig _config;
    readonly ParameterLayout _layout;

    public ReferenceModel(ModelConfig config, ParameterLayout layout)
    {
        if (layout.ParameterCount != config.ParameterCount)
            throw new ArgumentException($"layout has {layout.ParameterCount} parameters, the config {config.ParameterCount}");
        _config = config;
        _layout = layout;
    }

    public int TimeSteps => _config.TimeSteps;

    /// <summary>Forward, CTC loss and the analytic backward of the mean loss.</summary>
    /// <param name="images">[B, 3, Height, Width] in NCHW order.</param>
    /// <param name="labels">One label per sample: class indices in 1..C−1 (0 is the blank).</param>
    /// <param name="training">Batch statistics in BatchNorm (and running-stat update) when true; the running
    /// statistics from <paramref name="buffers"/> when false.</param>
    public Result Run(double[] parameters, double[] buffers, double[] images, int batch, int[][] labels, bool training, bool zeroInfinity = false) =>
        Execute(parameters, buffers, images, batch, labels, training, zeroInfinity, backward: true);

    /// <summary>Forward and loss only (Gradients is empty): what finite differences need.</summary>
    public Result Forward(double[] parameters, double[] buffers, double[] images, int batch, int[][] labels, bool training, bool zeroInfinity = false) =>
        Execute(parameters, buffers, images, batch, labels, training, zeroInfinity, backward: false);

    Result Execute(double[] parameters, double[] buffers, double[] images, int batch, int[][] labels, bool training, bool zeroInfinity, bool backward)
    {
        Validate(parameters, buffers, images, batch, labels);
        var weights = new Weights(_layout, parameters, new double[parameters.Length], (double[])buffers.Clone(), training);
        int T = TimeSteps, C = _config.Classes;

        var backbone = new Backbone(weights, _config);
        var neck = new[] { new BiLstm(weights, "neck.lstm.0", _config.Hidden), new BiLstm(weights, "neck.lstm.1", _config.Hidden) };
        var head = new Linear(weights.Param("head.fc.weight"), weights.Param("head.fc.bias"), 2 * _config.Hidden, C);

        var features = backbone.Forward(new Map(images, batch, 3, _config.Height, _config.Width));
        var sequence = Im2SeqForward(features);
        foreach (var layer in neck) sequence = layer.Forward(sequence, batch, T);
        var logits = head.Forward(sequence, batch * T);

        var losses = new double[batch];
        var dLogits = new double[logits.Length];
        for (int b = 0; b < batch; b++)
        {
            var (loss, grad) = CtcLoss(logits.AsSpan(b * T * C, T * C).ToArray(), T, C, labels[b]);
            bool infeasible = double.IsPositiveInfinity(loss);
            losses[b] = infeasible && zeroInfinity ? 0 : loss;
            // An infeasible sample has no gradient (zero_infinity's convention; without it the loss is +inf anyway).
            if (!infeasible)
                for (int i = 0; i < T * C; i++) dLogits[b * T * C + i] = grad[i] / batch;
        }

        if (backward)
        {
            var dSequence = head.Backward(dLogits);
            for (int l = neck.Length - 1; l >= 0; l--) dSequence = neck[l].Backward(dSequence);
            backbone.Backward(Im2SeqBackward(dSequence, features));
        }
        return new Result(logits, losses, losses.Average(), backward ? weights.Grads : [], weights.Buffers);
    }

    void Validate(double[] parameters, double[] buffers, double[] images, int batch, int[][] labels)
    {
        if (parameters.Length != _layout.ParameterCount) throw new ArgumentException($"expected {_layout.ParameterCount} parameters, got {parameters.Length}");
        if (buffers.Length != _layout.BufferCount) throw new ArgumentException($"expected {_layout.BufferCount} buffer values, got {buffers.Length}");
        if (batch < 1 || images.Length != batch * 3 * _config.Height * _config.Width)
            throw new ArgumentException($"expected {batch}×3×{_config.Height}×{_config.Width} image values, got {images.Length}");
        if (labels.Length != batch) throw new ArgumentException($"expected {batch} labels, got {labels.Length}");
        foreach (var label in labels)
            if (label.Any(k => k < 1 || k >= _config.Classes))
                throw new ArgumentException($"label classes must lie in 1..{_config.Classes - 1} (0 is the blank)");
    }

    // ───────────────────────────── data: feature maps and parameters ─────────────────────────────

    /// <summary>A feature map [N, C, H, W] in NCHW order.</summary>
    sealed record Map(double[] Data, int N, int C, int H, int W)
    {
        public int Plane => H * W;
        public static Map Zeros(int n, int c, int h, int w) => new(new double[n * c * h * w], n, c, h, w);
        public Map ZerosLike() => Zeros(N, C, H, W);
    }

    /// <summary>One parameter tensor: its values and gradient at one offset of the flat arrays.</summary>
    readonly record struct Param(double[] Values, double[] Grads, int Offset)
    {
        public double this[int i] => Values[Offset + i];
        public ref double Grad(int i) => ref Grads[Offset + i];
    }

    /// <summary>The flat parameter, gradient and running-statistics arrays, addressed by layout name.</summary>
    sealed class Weights(ParameterLayout layout, double[] values, double[] grads, double[] buffers, bool training)
    {
        public double[] Grads => grads;
        public double[] Buffers => buffers;
        public bool Training => training;
        public Param Param(string name) => new(values, grads, layout[name].Offset);
        public int BufferOffset(string name) => layout[name].Offset;
    }

    // ───────────────────────────── backbone blocks ─────────────────────────────

    /// <summary>conv1 → 15 residual units → conv2 → 2×2 max-pool.</summary>
    sealed class Backbone
    {
        readonly ConvBnAct _stem, _conv2;
        readonly ResidualUnit[] _units;
        readonly MaxPool _pool = new();

        public Backbone(Weights w, ModelConfig config)
        {
            // conv1 sees the image: its input gradient is never needed.
            _stem = new ConvBnAct(w, "backbone.conv1", config.StemChannels, 3, 2, 2, 1, Activation.HardSwish, needInputGradient: false);
            _units = config.Units.Select((u, i) => new ResidualUnit(w, $"backbone.units.{i}", u)).ToArray();
            _conv2 = new ConvBnAct(w, "backbone.conv2", config.HeadChannels, 1, 1, 1, 1, Activation.HardSwish);
        }

        public Map Forward(Map x)
        {
            x = _stem.Forward(x);
            foreach (var unit in _units) x = unit.Forward(x);
            return _pool.Forward(_conv2.Forward(x));
        }

        public void Backward(Map dy)
        {
            dy = _conv2.Backward(_pool.Backward(dy));
            for (int i = _units.Length - 1; i >= 0; i--) dy = _units[i].Backward(dy);
            _stem.Backward(dy);
        }
    }

    /// <summary>Expand 1×1 + BN + act, depthwise k×k + BN + act, optional SE, linear 1×1 + BN, shortcut.</summary>
    sealed class ResidualUnit
    {
        readonly ConvBnAct _expand, _depthwise, _linear;
        readonly SqueezeExcite? _se;
        readonly bool _shortcut;

        public ResidualUnit(Weights w, string name, UnitSpec u)
        {
            _expand = new ConvBnAct(w, $"{name}.expand", u.Expand, 1, 1, 1, 1, u.Act);
            _depthwise = new ConvBnAct(w, $"{name}.depthwise", u.Expand, u.Kernel, u.StrideH, u.StrideW, u.Expand, u.Act);
            _se = u.SqueezeExcite ? new SqueezeExcite(w, $"{name}.se", u.Expand, u.SqueezeChannels) : null;
            _linear = new ConvBnAct(w, $"{name}.linear", u.Out, 1, 1, 1, 1, Activation.None);
            _shortcut = u.HasShortcut;
        }

        public Map Forward(Map x)
        {
            var y = _depthwise.Forward(_expand.Forward(x));
            if (_se != null) y = _se.Forward(y);
            y = _linear.Forward(y);
            return _shortcut ? Add(x, y) : y;
        }

        public Map Backward(Map dy)
        {
            var d = _linear.Backward(dy);
            if (_se != null) d = _se.Backward(d);
            var dx = _expand.Backward(_depthwise.Backward(d));
            return _shortcut ? Add(dx, dy) : dx; // the shortcut passes dy straight to x
        }

        static Map Add(Map a, Map b)
        {
            var sum = a.ZerosLike();
            for (int i = 0; i < sum.Data.Length; i++) sum.Data[i] = a.Data[i] + b.Data[i];
            return sum;
        }
    }

    /// <summary>A bias-free convolution, its BatchNorm, then an activation (None for the linear 1×1).</summary>
    sealed class ConvBnAct(Weights w, string name, int outChannels, int kernel, int strideH, int strideW, int groups, Activation act, bool needInputGradient = true)
    {
        readonly Param _weight = w.Param($"{name}.weight");
        readonly BatchNorm _bn = new(w, $"{name}.bn");
        Map? _input, _preActivation;

        public Map Forward(Map x)
        {
            _input = x;
            _preActivation = _bn.Forward(ConvForward(x, _weight, outChannels, kernel, strideH, strideW, groups));
            return ActivationForward(_preActivation, act);
        }

        public Map Backward(Map dy)
        {
            var dConv = _bn.Backward(ActivationBackward(_preActivation!, dy, act));
            return ConvBackward(_input!, dConv, _weight, kernel, strideH, strideW, groups, needInputGradient);
        }
    }

    /// <summary>Squeeze-and-excite: channel scale = hardsigmoid(W2·relu(W1·avgpool(x) + b1) + b2).</summary>
    sealed class SqueezeExcite(Weights w, string name, int channels, int squeeze)
    {
        readonly Linear _reduce = new(w.Param($"{name}.conv1.weight"), w.Param($"{name}.conv1.bias"), channels, squeeze);
        readonly Linear _expand = new(w.Param($"{name}.conv2.weight"), w.Param($"{name}.conv2.bias"), squeeze, channels);
        Map? _input;
        double[]? _reduced, _expanded, _scale;

        public Map Forward(Map x)
        {
            _input = x;
            _reduced = _reduce.Forward(GlobalAveragePool(x), x.N);
            _expanded = _expand.Forward(_reduced.Select(Relu).ToArray(), x.N);
            _scale = _expanded.Select(HardSigmoid).ToArray();
            var y = x.ZerosLike();
            for (int nc = 0; nc < x.N * x.C; nc++)
                for (int p = 0; p < x.Plane; p++) y.Data[nc * x.Plane + p] = x.Data[nc * x.Plane + p] * _scale[nc];
            return y;
        }

        public Map Backward(Map dy)
        {
            var x = _input!;
            var dScale = new double[x.N * x.C];
            for (int nc = 0; nc < dScale.Length; nc++)
                for (int p = 0; p < x.Plane; p++) dScale[nc] += dy.Data[nc * x.Plane + p] * x.Data[nc * x.Plane + p];
            var dExpanded = dScale.Select((d, i) => d * HardSigmoidGrad(_expanded![i])).ToArray();
            var dRelu = _expand.Backward(dExpanded);
            var dReduced = dRelu.Select((d, i) => d * ReluGrad(_reduced![i])).ToArray();
            var dPooled = _reduce.Backward(dReduced);
            // x reaches the output twice: scaled directly, and through the pooled mean that sets the scale.
            var dx = x.ZerosLike();
            for (int nc = 0; nc < dScale.Length; nc++)
                for (int p = 0; p < x.Plane; p++)
                    dx.Data[nc * x.Plane + p] = dy.Data[nc * x.Plane + p] * _scale![nc] + dPooled[nc] / x.Plane;
            return dx;
        }

        static double[] GlobalAveragePool(Map x)
        {
            var pooled = new double[x.N * x.C];
            for (int nc = 0; nc < pooled.Length; nc++)
            {
                double sum = 0;
                for (int p = 0; p < x.Plane; p++) sum += x.Data[nc * x.Plane + p];
                pooled[nc] = sum / x.Plane;
            }
            return pooled;
        }
    }

    // ───────────────────────────── convolution ─────────────────────────────

    /// <summary>Grouped convolution without bias, padding (k−1)/2. Weight [out, in/groups, k, k].
    /// groups = 1 gives conv1 and the 1×1 convolutions, groups = channels the depthwise one.</summary>
    static Map ConvForward(Map x, Param w, int outChannels, int k, int sh, int sw, int groups)
    {
        int pad = (k - 1) / 2, inPer = x.C / groups, outPer = outChannels / groups;
        var y = Map.Zeros(x.N, outChannels, (x.H + 2 * pad - k) / sh + 1, (x.W + 2 * pad - k) / sw + 1);
        for (int n = 0; n < x.N; n++)
            for (int o = 0; o < outChannels; o++)
                for (int ci = 0; ci < inPer; ci++)
                {
                    int xBase = (n * x.C + o / outPer * inPer + ci) * x.Plane, yBase = (n * outChannels + o) * y.Plane;
                    for (int kh = 0; kh < k; kh++)
                        for (int kw = 0; kw < k; kw++)
                        {
                            double wv = w[((o * inPer + ci) * k + kh) * k + kw];
                            var (lo, hi) = ValidOutputs(y.W, x.W, sw, kw - pad);
                            for (int oy = 0; oy < y.H; oy++)
                            {
                                int iy = oy * sh - pad + kh;
                                if (iy < 0 || iy >= x.H) continue;
                                for (int ox = lo; ox < hi; ox++)
                                    y.Data[yBase + oy * y.W + ox] += wv * x.Data[xBase + iy * x.W + ox * sw - pad + kw];
                            }
                        }
                }
        return y;
    }

    /// <summary>Accumulates dW; returns dX (left zero when the caller needs no input gradient).</summary>
    static Map ConvBackward(Map x, Map dy, Param w, int k, int sh, int sw, int groups, bool needInputGradient)
    {
        int pad = (k - 1) / 2, inPer = x.C / groups, outPer = dy.C / groups;
        var dx = x.ZerosLike();
        for (int n = 0; n < x.N; n++)
            for (int o = 0; o < dy.C; o++)
                for (int ci = 0; ci < inPer; ci++)
                {
                    int xBase = (n * x.C + o / outPer * inPer + ci) * x.Plane, yBase = (n * dy.C + o) * dy.Plane;
                    for (int kh = 0; kh < k; kh++)
                        for (int kw = 0; kw < k; kw++)
                        {
                            int wi = ((o * inPer + ci) * k + kh) * k + kw;
                            double wv = w[wi], dw = 0;
                            var (lo, hi) = ValidOutputs(dy.W, x.W, sw, kw - pad);
                            for (int oy = 0; oy < dy.H; oy++)
                            {
                                int iy = oy * sh - pad + kh;
                                if (iy < 0 || iy >= x.H) continue;
                                for (int ox = lo; ox < hi; ox++)
                                {
                                    int xi = xBase + iy * x.W + ox * sw - pad + kw;
                                    double g = dy.Data[yBase + oy * dy.W + ox];
                                    dw += g * x.Data[xi];
                                    if (needInputGradient) dx.Data[xi] += g * wv;
                                }
                            }
                            w.Grad(wi) += dw;
                        }
                }
        return dx;
    }

    /// <summary>The output columns [lo, hi) whose input column ox·stride + offset lies inside the image.</summary>
    static (int Lo, int Hi) ValidOutputs(int outLength, int inLength, int stride, int offset)
    {
        int lo = 0, hi = outLength;
        while (lo < hi && lo * stride + offset < 0) lo++;
        while (hi > lo && (hi - 1) * stride + offset >= inLength) hi--;
        return (lo, hi);
    }

    // ───────────────────────────── batch norm ─────────────────────────────

    /// <summary>Per-channel normalization over (N, H, W). Training: batch mean and biased variance, and the
    /// running statistics move 10 % toward them; evaluation: the running statistics.</summary>
    sealed class BatchNorm(Weights weights, string name)
    {
        readonly Weights _weights = weights;
        readonly Param _gamma = weights.Param($"{name}.weight"), _beta = weights.Param($"{name}.bias");
        readonly int _meanOffset = weights.BufferOffset($"{name}.running_mean"), _varOffset = weights.BufferOffset($"{name}.running_var");
        Map? _normalized;
        double[]? _invStd;

        public Map Forward(Map x)
        {
            var y = x.ZerosLike();
            _normalized = x.ZerosLike();
            _invStd = new double[x.C];
            for (int c = 0; c < x.C; c++)
            {
                var at = ChannelIndices(x, c);
                var (mean, variance) = _weights.Training ? BatchStatistics(x.Data, at) : (_weights.Buffers[_meanOffset + c], _weights.Buffers[_varOffset + c]);
                if (_weights.Training)
                {
                    _weights.Buffers[_meanOffset + c] = BnMomentum * _weights.Buffers[_meanOffset + c] + (1 - BnMomentum) * mean;
                    _weights.Buffers[_varOffset + c] = BnMomentum * _weights.Buffers[_varOffset + c] + (1 - BnMomentum) * variance;
                }
                _invStd[c] = 1 / Math.Sqrt(variance + BnEpsilon);
                foreach (int i in at)
                {
                    _normalized.Data[i] = (x.Data[i] - mean) * _invStd[c];
                    y.Data[i] = _gamma[c] * _normalized.Data[i] + _beta[c];
                }
            }
            return y;
        }

        public Map Backward(Map dy)
        {
            var xhat = _normalized!.Data;
            var dx = dy.ZerosLike();
            for (int c = 0; c < dy.C; c++)
            {
                var at = ChannelIndices(dy, c);
                double sumDy = 0, sumDyXhat = 0;
                foreach (int i in at)
                {
                    sumDy += dy.Data[i];
                    sumDyXhat += dy.Data[i] * xhat[i];
                }
                _beta.Grad(c) += sumDy;
                _gamma.Grad(c) += sumDyXhat;
                double scale = _gamma[c] * _invStd![c];
                // In training the mean and variance depend on x too: remove the gradient's mean and its
                // component along x̂. In evaluation BN is a fixed affine map.
                foreach (int i in at)
                    dx.Data[i] = _weights.Training
                        ? scale * (dy.Data[i] - sumDy / at.Length - xhat[i] * sumDyXhat / at.Length)
                        : scale * dy.Data[i];
            }
            return dx;
        }

        static (double Mean, double Variance) BatchStatistics(double[] x, int[] at)
        {
            double sum = 0, squares = 0;
            foreach (int i in at) sum += x[i];
            double mean = sum / at.Length;
            foreach (int i in at) squares += (x[i] - mean) * (x[i] - mean);
            return (mean, squares / at.Length); // biased, as the normalization itself uses
        }

        /// <summary>Where channel c's elements lie, over (n, h, w).</summary>
        static int[] ChannelIndices(Map x, int c)
        {
            var at = new int[x.N * x.Plane];
            for (int n = 0; n < x.N; n++)
                for (int p = 0; p < x.Plane; p++) at[n * x.Plane + p] = (n * x.C + c) * x.Plane + p;
            return at;
        }
    }

    // ───────────────────────────── activations ─────────────────────────────

    [ThreadStatic] static double _nearestKink;

    /// <summary>The smallest distance of any activation input from its activation's kink (relu 0, hardswish ±3,
    /// hardsigmoid ±2.5) since <see cref="ResetKinks"/>. Within float32 rounding of a kink the engine may take the
    /// other branch than this float64 model, and every gradient before it moves by ~1 %.</summary>
    public static double NearestKink => _nearestKink;
    public static void ResetKinks() => _nearestKink = double.PositiveInfinity;
    static double Near(double x, double distance)
    {
        if (distance < _nearestKink) _nearestKink = distance;
        return x;
    }

    internal static double Relu(double x) => Near(x > 0 ? x : 0, Math.Abs(x));
    internal static double ReluGrad(double x) => x > 0 ? 1 : 0;
    internal static double HardSwish(double x) => Near(x * Math.Clamp(x + 3, 0, 6) / 6, Math.Min(Math.Abs(x + 3), Math.Abs(x - 3)));
    internal static double HardSwishGrad(double x) => x < -3 ? 0 : x > 3 ? 1 : (2 * x + 3) / 6;
    /// <summary>Paddle's hardsigmoid: clip(0.2·x + 0.5, 0, 1).</summary>
    internal static double HardSigmoid(double x) => Near(Math.Clamp(0.2 * x + 0.5, 0, 1), Math.Min(Math.Abs(x + 2.5), Math.Abs(x - 2.5)));
    internal static double HardSigmoidGrad(double x) => x > -2.5 && x < 2.5 ? 0.2 : 0;

    static double Apply(Activation act, double x) => act switch
    {
        Activation.None => x,
        Activation.Relu => Relu(x),
        Activation.HardSwish => HardSwish(x),
        Activation.HardSigmoid => HardSigmoid(x),
        _ => throw new ArgumentOutOfRangeException(nameof(act)),
    };

    static double Derivative(Activation act, double x) => act switch
    {
        Activation.None => 1,
        Activation.Relu => ReluGrad(x),
        Activation.HardSwish => HardSwishGrad(x),
        Activation.HardSigmoid => HardSigmoidGrad(x),
        _ => throw new ArgumentOutOfRangeException(nameof(act)),
    };

    static Map ActivationForward(Map x, Activation act)
    {
        var y = x.ZerosLike();
        for (int i = 0; i < y.Data.Length; i++) y.Data[i] = Apply(act, x.Data[i]);
        return y;
    }

    /// <summary>dx = dy·act'(x), with x the activation's input.</summary>
    static Map ActivationBackward(Map x, Map dy, Activation act)
    {
        var dx = dy.ZerosLike();
        for (int i = 0; i < dx.Data.Length; i++) dx.Data[i] = dy.Data[i] * Derivative(act, x.Data[i]);
        return dx;
    }

    // ───────────────────────────── pooling and Im2Seq ─────────────────────────────

    /// <summary>2×2 max-pool, stride 2; the first maximum of a window takes the gradient.</summary>
    sealed class MaxPool
    {
        Map? _input;
        int[]? _argmax;

        public Map Forward(Map x)
        {
            _input = x;
            var y = Map.Zeros(x.N, x.C, x.H / 2, x.W / 2);
            _argmax = new int[y.Data.Length];
            for (int nc = 0; nc < x.N * x.C; nc++)
                for (int oy = 0; oy < y.H; oy++)
                    for (int ox = 0; ox < y.W; ox++)
                    {
                        int best = nc * x.Plane + 2 * oy * x.W + 2 * ox;
                        foreach (var (dy, dx) in new[] { (0, 1), (1, 0), (1, 1) })
                        {
                            int at = nc * x.Plane + (2 * oy + dy) * x.W + 2 * ox + dx;
                            if (x.Data[at] > x.Data[best]) best = at;
                        }
                        int o = nc * y.Plane + oy * y.W + ox;
                        y.Data[o] = x.Data[best];
                        _argmax[o] = best;
                    }
            return y;
        }

        public Map Backward(Map dy)
        {
            var dx = _input!.ZerosLike();
            for (int o = 0; o < dy.Data.Length; o++) dx.Data[_argmax![o]] += dy.Data[o];
            return dx;
        }
    }

    /// <summary>[B, C, 1, T] → [B, T, C].</summary>
    static double[] Im2SeqForward(Map x)
    {
        if (x.H != 1) throw new InvalidOperationException($"Im2Seq needs a feature map 1 high, got {x.H}");
        var seq = new double[x.Data.Length];
        for (int b = 0; b < x.N; b++)
            for (int c = 0; c < x.C; c++)
                for (int t = 0; t < x.W; t++) seq[(b * x.W + t) * x.C + c] = x.Data[(b * x.C + c) * x.W + t];
        return seq;
    }

    static Map Im2SeqBackward(double[] dSeq, Map x)
    {
        var dx = x.ZerosLike();
        for (int b = 0; b < x.N; b++)
            for (int c = 0; c < x.C; c++)
                for (int t = 0; t < x.W; t++) dx.Data[(b * x.C + c) * x.W + t] = dSeq[(b * x.W + t) * x.C + c];
        return dx;
    }

    // ───────────────────────────── linear ─────────────────────────────

    /// <summary>y[r, o] = Σ_j W[o, j]·x[r, j] + b[o] over rows r: the head, and SE's two 1×1 convolutions.</summary>
    sealed class Linear(Param weight, Param bias, int inFeatures, int outFeatures)
    {
        double[]? _input;
        int _rows;

        public double[] Forward(double[] x, int rows)
        {
            _input = x;
            _rows = rows;
            var y = new double[rows * outFeatures];
            for (int r = 0; r < rows; r++)
                for (int o = 0; o < outFeatures; o++)
                {
                    double sum = bias[o];
                    for (int j = 0; j < inFeatures; j++) sum += weight[o * inFeatures + j] * x[r * inFeatures + j];
                    y[r * outFeatures + o] = sum;
                }
            return y;
        }

        public double[] Backward(double[] dy)
        {
            var dx = new double[_rows * inFeatures];
            for (int r = 0; r < _rows; r++)
                for (int o = 0; o < outFeatures; o++)
                {
                    double g = dy[r * outFeatures + o];
                    bias.Grad(o) += g;
                    for (int j = 0; j < inFeatures; j++)
                    {
                        weight.Grad(o * inFeatures + j) += g * _input![r * inFeatures + j];
                        dx[r * inFeatures + j] += g * weight[o * inFeatures + j];
                    }
                }
            return dx;
        }
    }

    // ───────────────────────────── LSTM ─────────────────────────────

    /// <summary>One bidirectional LSTM layer: [B, T, I] → [B, T, 2H] = concat(forward, reverse).</summary>
    sealed class BiLstm(Weights w, string name, int hiddenSize)
    {
        readonly LstmDirection _forward = new(w, $"{name}.forward", hiddenSize, reverse: false);
        readonly LstmDirection _reverse = new(w, $"{name}.reverse", hiddenSize, reverse: true);
        readonly int _hidden = hiddenSize;
        int _rows;

        public double[] Forward(double[] x, int batch, int steps)
        {
            _rows = batch * steps;
            var fwd = _forward.Forward(x, batch, steps);
            var rev = _reverse.Forward(x, batch, steps);
            var y = new double[_rows * 2 * _hidden];
            for (int r = 0; r < _rows; r++)
            {
                Array.Copy(fwd, r * _hidden, y, r * 2 * _hidden, _hidden);
                Array.Copy(rev, r * _hidden, y, r * 2 * _hidden + _hidden, _hidden);
            }
            return y;
        }

        public double[] Backward(double[] dy)
        {
            var dFwd = new double[_rows * _hidden];
            var dRev = new double[_rows * _hidden];
            for (int r = 0; r < _rows; r++)
            {
                Array.Copy(dy, r * 2 * _hidden, dFwd, r * _hidden, _hidden);
                Array.Copy(dy, r * 2 * _hidden + _hidden, dRev, r * _hidden, _hidden);
            }
            var dx = _forward.Backward(dFwd);
            var dxRev = _reverse.Backward(dRev);
            for (int i = 0; i < dx.Length; i++) dx[i] += dxRev[i];
            return dx;
        }
    }

    /// <summary>
    /// One LSTM direction, PyTorch's gate order (i, f, g, o): a = W_ih·x_t + b_ih + W_hh·h + b_hh,
    /// c' = σ(a_f)⊙c + σ(a_i)⊙tanh(a_g), h' = σ(a_o)⊙tanh(c'); zero initial state. The reverse direction
    /// walks t = T−1…0 and writes its output at the same t.
    /// </summary>
    sealed class LstmDirection(Weights w, string name, int hidden, bool reverse)
    {
        readonly Param _wih = w.Param($"{name}.weight_ih"), _whh = w.Param($"{name}.weight_hh");
        readonly Param _bih = w.Param($"{name}.bias_ih"), _bhh = w.Param($"{name}.bias_hh");
        double[]? _input, _gates, _cells, _prevH, _prevC;
        int _batch, _steps, _inFeatures;

        int TimeAt(int step) => reverse ? _steps - 1 - step : step;

        public double[] Forward(double[] x, int batch, int steps)
        {
            (_input, _batch, _steps, _inFeatures) = (x, batch, steps, x.Length / (batch * steps));
            int H = hidden, rows = batch * steps;
            _gates = new double[rows * 4 * H];
            (_cells, _prevH, _prevC) = (new double[rows * H], new double[rows * H], new double[rows * H]);
            var output = new double[rows * H];
            for (int b = 0; b < batch; b++)
            {
                var h = new double[H];
                var c = new double[H];
                for (int step = 0; step < steps; step++)
                {
                    int r = b * steps + TimeAt(step);
                    Array.Copy(h, 0, _prevH, r * H, H);
                    Array.Copy(c, 0, _prevC, r * H, H);
                    var a = GatePreActivations(x, r, h);
                    for (int j = 0; j < H; j++)
                    {
                        double i = Sigmoid(a[j]), f = Sigmoid(a[H + j]), g = Math.Tanh(a[2 * H + j]), o = Sigmoid(a[3 * H + j]);
                        (_gates[r * 4 * H + j], _gates[r * 4 * H + H + j], _gates[r * 4 * H + 2 * H + j], _gates[r * 4 * H + 3 * H + j]) = (i, f, g, o);
                        c[j] = f * c[j] + i * g;
                        h[j] = o * Math.Tanh(c[j]);
                    }
                    Array.Copy(c, 0, _cells, r * H, H);
                    Array.Copy(h, 0, output, r * H, H);
                }
            }
            return output;
        }

        double[] GatePreActivations(double[] x, int row, double[] h)
        {
            int H = hidden;
            var a = new double[4 * H];
            for (int g = 0; g < 4 * H; g++)
            {
                double sum = _bih[g] + _bhh[g];
                for (int k = 0; k < _inFeatures; k++) sum += _wih[g * _inFeatures + k] * x[row * _inFeatures + k];
                for (int k = 0; k < H; k++) sum += _whh[g * H + k] * h[k];
                a[g] = sum;
            }
            return a;
        }

        /// <summary>Backpropagation through time, walking the steps in the opposite order.</summary>
        public double[] Backward(double[] dOutput)
        {
            int H = hidden;
            var dx = new double[_input!.Length];
            for (int b = 0; b < _batch; b++)
            {
                var dhNext = new double[H];
                var dcNext = new double[H];
                for (int step = _steps - 1; step >= 0; step--)
                {
                    int r = b * _steps + TimeAt(step);
                    var da = new double[4 * H];
                    for (int j = 0; j < H; j++)
                    {
                        int gi = r * 4 * H;
                        double i = _gates![gi + j], f = _gates[gi + H + j], g = _gates[gi + 2 * H + j], o = _gates[gi + 3 * H + j];
                        double tanhC = Math.Tanh(_cells![r * H + j]);
                        double dh = dOutput[r * H + j] + dhNext[j];
                        double dc = dcNext[j] + dh * o * (1 - tanhC * tanhC);
                        da[j] = dc * g * i * (1 - i);
                        da[H + j] = dc * _prevC![r * H + j] * f * (1 - f);
                        da[2 * H + j] = dc * i * (1 - g * g);
                        da[3 * H + j] = dh * tanhC * o * (1 - o);
                        dcNext[j] = dc * f;
                    }
                    dhNext = AccumulateGateGradients(da, r, dx);
                }
            }
            return dx;
        }

        /// <summary>Adds the weight and bias gradients of one step and dx_t; returns dh_{prev}.</summary>
        double[] AccumulateGateGradients(double[] da, int row, double[] dx)
        {
            int H = hidden;
            var dhPrev = new double[H];
            for (int g = 0; g < 4 * H; g++)
            {
                _bih.Grad(g) += da[g];
                _bhh.Grad(g) += da[g];
                for (int k = 0; k < _inFeatures; k++)
                {
                    _wih.Grad(g * _inFeatures + k) += da[g] * _input![row * _inFeatures + k];
                    dx[row * _inFeatures + k] += da[g] * _wih[g * _inFeatures + k];
                }
                for (int k = 0; k < H; k++)
                {
                    _whh.Grad(g * H + k) += da[g] * _prevH![row * H + k];
                    dhPrev[k] += da[g] * _whh[g * H + k];
                }
            }
            return dhPrev;
        }

        static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
    }

    // ───────────────────────────── CTC ─────────────────────────────

    /// <summary>
    /// CTC loss of one sample, −log p(label | logits), over log-softmax(logits) with blank 0, and its gradient
    /// with respect to the logits: softmax − posterior occupancy of each class (alpha/beta in log space).
    /// An infeasible label gives +inf and a zero gradient.
    /// </summary>
    /// <param name="logits">[T, C] for one sample.</param>
    public static (double Loss, double[] Gradient) CtcLoss(double[] logits, int steps, int classes, int[] label)
    {
        var logProbs = LogSoftmax(logits, steps, classes);
        int[] ext = ExtendWithBlanks(label);
        var alpha = CtcAlpha(logProbs, steps, classes, ext);
        var beta = CtcBeta(logProbs, steps, classes, ext);
        int S = ext.Length;
        double logLikelihood = LogSumExp(alpha[(steps - 1) * S + S - 1], S > 1 ? alpha[(steps - 1) * S + S - 2] : double.NegativeInfinity);
        var gradient = new double[steps * classes];
        if (double.IsNegativeInfinity(logLikelihood)) return (double.PositiveInfinity, gradient);

        for (int t = 0; t < steps; t++)
        {
            // Posterior of each class at t: Σ over label positions s holding it of α_t(s)·β_t(s) / p, where
            // α and β both include the emission at t, so one copy of it is divided out.
            var logOccupancy = Enumerable.Repeat(double.NegativeInfinity, classes).ToArray();
            for (int s = 0; s < S; s++)
                logOccupancy[ext[s]] = LogSumExp(logOccupancy[ext[s]], alpha[t * S + s] + beta[t * S + s] - logProbs[t * classes + ext[s]]);
            for (int k = 0; k < classes; k++)
                gradient[t * classes + k] = Math.Exp(logProbs[t * classes + k]) - Math.Exp(logOccupancy[k] - logLikelihood);
        }
        return (-logLikelihood, gradient);
    }

    /// <summary>l' = blank, l1, blank, l2, …, blank.</summary>
    static int[] ExtendWithBlanks(int[] label)
    {
        var ext = new int[2 * label.Length + 1];
        for (int i = 0; i < label.Length; i++) ext[2 * i + 1] = label[i];
        return ext;
    }

    /// <summary>A path may skip the blank between two different symbols, never between equal ones.</summary>
    static bool CanSkip(int[] ext, int s) => s >= 2 && ext[s] != 0 && ext[s] != ext[s - 2];

    /// <summary>log α_t(s): paths through l'[0..s] ending at s at time t, emissions up to t included.</summary>
    static double[] CtcAlpha(double[] logProbs, int steps, int classes, int[] ext)
    {
        int S = ext.Length;
        var alpha = Enumerable.Repeat(double.NegativeInfinity, steps * S).ToArray();
        alpha[0] = logProbs[ext[0]];
        if (S > 1) alpha[1] = logProbs[ext[1]];
        for (int t = 1; t < steps; t++)
            for (int s = 0; s < S; s++)
            {
                double sum = alpha[(t - 1) * S + s];
                if (s >= 1) sum = LogSumExp(sum, alpha[(t - 1) * S + s - 1]);
                if (CanSkip(ext, s)) sum = LogSumExp(sum, alpha[(t - 1) * S + s - 2]);
                alpha[t * S + s] = sum + logProbs[t * classes + ext[s]];
            }
        return alpha;
    }

    /// <summary>log β_t(s): paths from s at time t to the end, emissions from t on included.</summary>
    static double[] CtcBeta(double[] logProbs, int steps, int classes, int[] ext)
    {
        int S = ext.Length, last = steps - 1;
        var beta = Enumerable.Repeat(double.NegativeInfinity, steps * S).ToArray();
        beta[last * S + S - 1] = logProbs[last * classes + ext[S - 1]];
        if (S > 1) beta[last * S + S - 2] = logProbs[last * classes + ext[S - 2]];
        for (int t = last - 1; t >= 0; t--)
            for (int s = 0; s < S; s++)
            {
                double sum = beta[(t + 1) * S + s];
                if (s + 1 < S) sum = LogSumExp(sum, beta[(t + 1) * S + s + 1]);
                if (s + 2 < S && CanSkip(ext, s + 2)) sum = LogSumExp(sum, beta[(t + 1) * S + s + 2]);
                beta[t * S + s] = sum + logProbs[t * classes + ext[s]];
            }
        return beta;
    }

    static double[] LogSoftmax(double[] logits, int steps, int classes)
    {
        var result = new double[steps * classes];
        for (int t = 0; t < steps; t++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int k = 0; k < classes; k++) max = Math.Max(max, logits[t * classes + k]);
            for (int k = 0; k < classes; k++) sum += Math.Exp(logits[t * classes + k] - max);
            double logZ = max + Math.Log(sum);
            for (int k = 0; k < classes; k++) result[t * classes + k] = logits[t * classes + k] - logZ;
        }
        return result;
    }

    static double LogSumExp(double a, double b)
    {
        if (double.IsNegativeInfinity(a)) return b;
        if (double.IsNegativeInfinity(b)) return a;
        double max = Math.Max(a, b);
        return max + Math.Log(Math.Exp(a - max) + Math.Exp(b - max));
    }
}
