namespace Crnn.Engine;

/// <summary>How a parameter tensor is initialized (MODEL.md: convolutions Kaiming-normal, linear
/// U(±1/√fan_in), BN γ = 1, β = 0; LSTM weights U(±1/√hidden) as PyTorch and Paddle do; conv biases 0).</summary>
public enum Init { KaimingNormal, Uniform, One, Zero }

/// <summary>One named tensor inside the flat parameter (or buffer) array.</summary>
public sealed record ParameterSpec(string Name, int[] Shape, int Offset, Init Init, int FanIn)
{
    public int Length => Shape.Aggregate(1, (a, b) => a * b);
}

/// <summary>
/// Every trainable tensor of the model in one contiguous array (and the BatchNorm running statistics in a
/// second one), in the model's order, with PyTorch-style names. The engine, the float64 reference in the
/// tests and the checkpoints all address parameters through this one layout.
/// </summary>
public sealed class ParameterLayout
{
    readonly List<ParameterSpec> _parameters = [], _buffers = [];
    readonly Dictionary<string, ParameterSpec> _byName = [];

    public IReadOnlyList<ParameterSpec> Parameters => _parameters;
    /// <summary>Non-trainable state: BatchNorm running mean and variance.</summary>
    public IReadOnlyList<ParameterSpec> Buffers => _buffers;
    public int ParameterCount { get; private set; }
    public int BufferCount { get; private set; }

    public ParameterSpec this[string name] =>
        _byName.TryGetValue(name, out var spec) ? spec : throw new KeyNotFoundException($"no parameter or buffer named '{name}'");

    public ParameterLayout(ModelConfig config)
    {
        Conv("backbone.conv1", config.StemChannels, 3, 3);
        for (int i = 0; i < config.Units.Count; i++)
        {
            var u = config.Units[i];
            string p = $"backbone.units.{i}";
            Conv($"{p}.expand", u.Expand, u.In, 1);
            Conv($"{p}.depthwise", u.Expand, 1, u.Kernel);
            if (u.SqueezeExcite)
            {
                Add($"{p}.se.conv1.weight", [u.SqueezeChannels, u.Expand, 1, 1], Init.KaimingNormal, u.Expand);
                Add($"{p}.se.conv1.bias", [u.SqueezeChannels], Init.Zero, u.Expand);
                Add($"{p}.se.conv2.weight", [u.Expand, u.SqueezeChannels, 1, 1], Init.KaimingNormal, u.SqueezeChannels);
                Add($"{p}.se.conv2.bias", [u.Expand], Init.Zero, u.SqueezeChannels);
            }
            Conv($"{p}.linear", u.Out, u.Expand, 1);
        }
        Conv("backbone.conv2", config.HeadChannels, config.Units[^1].Out, 1);
        int input = config.HeadChannels, h = config.Hidden;
        for (int layer = 0; layer < 2; layer++)
        {
            // The LSTM kernel's layout (LstmShape): each kind of tensor for both directions, then the next kind.
            foreach (var (kind, shape) in new[] { ("weight_ih", new[] { 4 * h, input }), ("weight_hh", [4 * h, h]), ("bias_ih", [4 * h]), ("bias_hh", [4 * h]) })
                foreach (var dir in new[] { "forward", "reverse" })
                    Add($"neck.lstm.{layer}.{dir}.{kind}", shape, Init.Uniform, h);
            input = 2 * h;
        }
        Add("head.fc.weight", [config.Classes, 2 * h], Init.Uniform, 2 * h);
        Add("head.fc.bias", [config.Classes], Init.Uniform, 2 * h);
    }

    /// <summary>A bias-free convolution (weights [out, in/groups, k, k]) and its BatchNorm.</summary>
    void Conv(string name, int outCh, int inPerGroup, int k)
    {
        Add($"{name}.weight", [outCh, inPerGroup, k, k], Init.KaimingNormal, inPerGroup * k * k);
        Add($"{name}.bn.weight", [outCh], Init.One, 0);
        Add($"{name}.bn.bias", [outCh], Init.Zero, 0);
        AddBuffer($"{name}.bn.running_mean", outCh, Init.Zero);
        AddBuffer($"{name}.bn.running_var", outCh, Init.One);
    }

    void Add(string name, int[] shape, Init init, int fanIn)
    {
        var spec = new ParameterSpec(name, shape, ParameterCount, init, fanIn);
        _parameters.Add(spec);
        _byName.Add(name, spec);
        ParameterCount += spec.Length;
    }

    void AddBuffer(string name, int length, Init init)
    {
        var spec = new ParameterSpec(name, [length], BufferCount, init, 0);
        _buffers.Add(spec);
        _byName.Add(name, spec);
        BufferCount += length;
    }

    /// <summary>Fresh parameters and buffers: a fixed seed gives identical values on every machine.</summary>
    public (float[] Parameters, float[] Buffers) Initialize(int seed)
    {
        var rng = new Random(seed);
        var parameters = new float[ParameterCount];
        foreach (var p in _parameters) Fill(parameters.AsSpan(p.Offset, p.Length), p, rng);
        var buffers = new float[BufferCount];
        foreach (var b in _buffers) Fill(buffers.AsSpan(b.Offset, b.Length), b, rng);
        return (parameters, buffers);
    }

    static void Fill(Span<float> values, ParameterSpec spec, Random rng)
    {
        switch (spec.Init)
        {
            case Init.One: values.Fill(1f); break;
            case Init.Zero: values.Clear(); break;
            case Init.Uniform:
                double bound = 1.0 / Math.Sqrt(spec.FanIn);
                for (int i = 0; i < values.Length; i++) values[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
                break;
            case Init.KaimingNormal:
                double std = Math.Sqrt(2.0 / spec.FanIn);
                for (int i = 0; i < values.Length; i++)
                {
                    // Box–Muller: portable, unlike library normal samplers whose algorithms may change.
                    double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
                    values[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
                }
                break;
        }
    }
}
