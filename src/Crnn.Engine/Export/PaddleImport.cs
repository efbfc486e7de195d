using Crnn.Kernels;
using Onnx;

namespace Crnn.Engine.Export;

/// <summary>
/// Reads a PaddleOCR MobileNetV3 CRNN recognizer exported to ONNX (paddle2onnx, as RapidOCR ships them;
/// BatchNorm folded into the convolutions or not) and turns it into a checkpoint of this engine: the
/// architecture is recognised from the graph (every convolution's shape, group, stride and activation, the
/// LSTMs, the head) and matched against the <see cref="ModelConfig"/> family; anything outside it, an
/// unknown operator or a class count the dictionary does not give, is an <see cref="InvalidDataException"/>
/// with a one-line message naming it. The result reads BGR and takes dynamic widths, as PaddleOCR's inference does.
/// </summary>
public static class PaddleImport
{
    /// <summary>PaddleOCR's rec_image_shape for these models: 3×32×320 (the width when the graph leaves it open).</summary>
    public const int DefaultWidth = 320;

    static readonly HashSet<string> KnownOps =
    [
        "Conv", "BatchNormalization", "Relu", "HardSwish", "HardSigmoid", "Add", "Clip", "Mul", "Div",
        "GlobalAveragePool", "MaxPool", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Shape", "Slice", "Concat",
        "Tile", "Expand", "ConstantOfShape", "Gather", "Cast", "Constant", "Identity", "LSTM", "MatMul", "Gemm", "Softmax",
    ];

    static readonly double[] Scales = [0.35, 0.5, 0.75, 1.0, 1.25];

    /// <summary>A node's name for messages: its name, else its first output.</summary>
    static string NodeName(NodeProto n) => n.Name.Length > 0 ? n.Name : n.Output.FirstOrDefault() ?? n.OpType;

    public static Checkpoint Import(string onnxPath, CharDictionary dictionary)
    {
        ModelProto model;
        try { model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnxPath)); }
        catch (Google.Protobuf.InvalidProtocolBufferException e) { throw new InvalidDataException($"'{onnxPath}' is not an ONNX model ({e.Message})", e); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new InvalidDataException($"cannot read '{onnxPath}': {e.Message}", e); }
        return Import(model, dictionary);
    }

    public static Checkpoint Import(ModelProto model, CharDictionary dictionary) => new Reader(model.Graph).Read(dictionary, ChannelOrderOf(model));

    /// <summary>PaddleOCR's models read BGR; a graph written by <see cref="OnnxExport"/> names its order in the metadata.</summary>
    static ChannelOrder ChannelOrderOf(ModelProto model) =>
        model.MetadataProps.FirstOrDefault(p => p.Key == OnnxExport.PreprocessKey)?.Value is { } preprocess && preprocess.StartsWith("RGB")
            ? ChannelOrder.Rgb : ChannelOrder.Bgr;

    /// <summary>One convolution as the graph has it, with what follows it (BatchNorm or bias, activation).</summary>
    sealed record Conv(NodeProto Node, ConstTensor Weight, int Groups, int StrideH, int StrideW,
        float[] Gamma, float[] Beta, float[] Mean, float[] Var, Activation Act, bool AfterPool, string Output)
    {
        public int Out => (int)Weight.Dims[0];
        public int InPerGroup => (int)Weight.Dims[1];
        public int Kernel => (int)Weight.Dims[2];
        public string Name => NodeName(Node);
    }

    sealed class Reader
    {
        readonly GraphProto _graph;
        readonly OnnxConstants _constants;
        readonly Dictionary<string, List<NodeProto>> _consumers = [];

        public Reader(GraphProto graph)
        {
            _graph = graph;
            _constants = new OnnxConstants(graph);
            foreach (var n in graph.Node)
            {
                if (!KnownOps.Contains(n.OpType))
                    throw new InvalidDataException($"unsupported operator '{n.OpType}' (node '{NodeName(n)}'): not part of a PaddleOCR MobileNetV3 CRNN recognizer");
                foreach (var i in n.Input)
                {
                    if (!_consumers.TryGetValue(i, out var list)) _consumers[i] = list = [];
                    list.Add(n);
                }
            }
        }


        NodeProto? OnlyConsumer(string name) => _consumers.TryGetValue(name, out var list) && list.Count == 1 ? list[0] : null;

        public Checkpoint Read(CharDictionary dictionary, ChannelOrder order)
        {
            var (height, width, dynamicWidth) = InputSize();
            var lstms = _graph.Node.Where(n => n.OpType == "LSTM").ToList();
            if (lstms.Count != 2) throw new InvalidDataException($"the graph has {lstms.Count} LSTMs; a CRNN recognizer has a 2-layer bidirectional LSTM");
            int hidden = LstmHidden(lstms[0]);
            var (fcWeight, fcBias) = ReadHead(2 * hidden);
            int classes = fcBias.Length;
            if (dictionary.Classes != classes)
                throw new InvalidDataException($"the model has {classes} classes, the dictionary gives {dictionary.Classes} ({dictionary.Classes - 1} symbols + blank){SpaceHint(classes, dictionary)}");
            var convs = _graph.Node.Where(n => n.OpType == "Conv").Select(ReadConv).ToList();
            if (convs.Count < 3) throw new InvalidDataException($"the graph has {convs.Count} convolutions; a MobileNetV3 backbone has dozens");
            CheckPool();
            var (units, stem, last) = ReadUnits(convs);

            var config = MatchConfig(units, stem, last, hidden, classes, height, width) with { ChannelOrder = order, DynamicWidth = dynamicWidth };
            try { _ = config.TimeSteps; }
            catch (InvalidOperationException e) { throw new InvalidDataException(e.Message, e); }
            var layout = new ParameterLayout(config);
            var parameters = new float[layout.ParameterCount];
            var buffers = new float[layout.BufferCount];
            void Set(string name, float[] values)
            {
                var spec = layout[name];
                if (values.Length != spec.Length) throw new InvalidDataException($"{name}: {values.Length} values, the model needs {spec.Length}");
                bool buffer = layout.Buffers.Contains(spec);
                values.CopyTo((buffer ? buffers : parameters).AsSpan(spec.Offset, spec.Length));
            }
            void SetConv(string name, Conv c)
            {
                Set($"{name}.weight", c.Weight.F);
                Set($"{name}.bn.weight", c.Gamma);
                Set($"{name}.bn.bias", c.Beta);
                Set($"{name}.bn.running_mean", c.Mean);
                Set($"{name}.bn.running_var", c.Var);
            }
            SetConv("backbone.conv1", stem);
            for (int i = 0; i < units.Count; i++)
            {
                var u = units[i];
                string p = $"backbone.units.{i}";
                SetConv($"{p}.expand", u.Expand);
                SetConv($"{p}.depthwise", u.Depthwise);
                if (u.Se is { } se)
                {
                    // SE convolutions carry a bias and no BatchNorm: Read put the bias in Beta (γ 1, μ 0, σ² 1 − ε).
                    Set($"{p}.se.conv1.weight", se.Reduce.Weight.F);
                    Set($"{p}.se.conv1.bias", se.Reduce.Beta);
                    Set($"{p}.se.conv2.weight", se.Expand.Weight.F);
                    Set($"{p}.se.conv2.bias", se.Expand.Beta);
                }
                SetConv($"{p}.linear", u.Linear);
            }
            SetConv("backbone.conv2", last);
            for (int l = 0; l < 2; l++) SetLstm(lstms[l], l, hidden, Set);
            Set("head.fc.weight", fcWeight);
            Set("head.fc.bias", fcBias);
            return new Checkpoint { Config = config, Dictionary = dictionary, Parameters = parameters, Buffers = buffers };
        }

        static string SpaceHint(int classes, CharDictionary dictionary) =>
            classes == dictionary.Classes + 1 ? "; PaddleOCR's use_space_char adds one: try --use-space-char" : "";

        /// <summary>Input height (32), width (fixed, or PaddleOCR's 320 when open) and whether the width is open.</summary>
        (int Height, int Width, bool Dynamic) InputSize()
        {
            var inputs = _graph.Input.Where(i => _constants.TryGet(i.Name) is null).ToList();
            if (inputs.Count != 1) throw new InvalidDataException($"the graph has {inputs.Count} inputs; a recognizer has one image input");
            var dims = inputs[0].Type.TensorType.Shape.Dim;
            if (dims.Count != 4) throw new InvalidDataException($"input '{inputs[0].Name}' has {dims.Count} dimensions; expected [N, 3, 32, W]");
            long Fixed(int k) => dims[k].DimValue > 0 ? dims[k].DimValue : -1;
            if (Fixed(1) is not (3 or -1)) throw new InvalidDataException($"input '{inputs[0].Name}' has {Fixed(1)} channels; expected 3");
            long h = Fixed(2), w = Fixed(3);
            if (h is not (32 or -1)) throw new InvalidDataException($"input height {h}: only height-32 recognizers are supported");
            return (32, w > 0 ? (int)w : DefaultWidth, w <= 0);
        }

        Conv ReadConv(NodeProto node)
        {
            string name = NodeName(node);
            var weight = _constants.Get(node.Input[1], $"weights of convolution '{name}'");
            var attrs = node.Attribute.ToDictionary(a => a.Name);
            long[] Ints(string key, long fallback) => attrs.TryGetValue(key, out var a) ? [.. a.Ints] : [fallback, fallback, fallback, fallback];
            var strides = Ints("strides", 1);
            var pads = Ints("pads", 0);
            var dilations = Ints("dilations", 1);
            int groups = attrs.TryGetValue("group", out var g) ? (int)g.I : 1;
            int k = (int)weight.Dims[2];
            if (weight.Dims.Length != 4 || weight.Dims[3] != k || dilations.Any(d => d != 1) || pads.Any(p => p != (k - 1) / 2)
                || attrs.TryGetValue("auto_pad", out var autoPad) && autoPad.S.ToStringUtf8() is not ("" or "NOTSET"))
                throw new InvalidDataException($"convolution '{name}': weights {weight.Shape}, pads [{string.Join(", ", pads)}], dilations [{string.Join(", ", dilations)}]; expected a square odd kernel, 'same' padding, no dilation");
            int outCh = (int)weight.Dims[0];

            // What follows: BatchNorm, or a bias (in the Conv, or an Add of a constant), then maybe an activation.
            float[] gamma = Ones(outCh), beta = new float[outCh], mean = new float[outCh], variance = Ones(outCh, 1f - BatchNormEpsilon);
            string output = node.Output[0];
            bool hasBias = node.Input.Count > 2 && node.Input[2].Length > 0;
            if (hasBias) beta = Channels(_constants.Get(node.Input[2], $"bias of convolution '{name}'"), outCh, name);
            var next = OnlyConsumer(output);
            if (!hasBias && next?.OpType == "BatchNormalization")
            {
                gamma = Channels(_constants.Get(next.Input[1], $"BatchNorm scale after '{name}'"), outCh, name);
                beta = Channels(_constants.Get(next.Input[2], $"BatchNorm bias after '{name}'"), outCh, name);
                mean = Channels(_constants.Get(next.Input[3], $"BatchNorm mean after '{name}'"), outCh, name);
                variance = Channels(_constants.Get(next.Input[4], $"BatchNorm variance after '{name}'"), outCh, name);
                // (x − μ)/√(σ² + ε) is the same with σ² + ε − 1e-5 under this engine's ε = 1e-5.
                float eps = next.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
                variance = variance.Select(v => v + eps - BatchNormEpsilon).ToArray();
                if (variance.Any(v => !(v + BatchNormEpsilon > 0))) throw new InvalidDataException($"BatchNorm after '{name}': ε {eps} leaves a variance ≤ 0 under ε 1e-5");
                output = next.Output[0];
                next = OnlyConsumer(output);
            }
            else if (!hasBias && next?.OpType == "Add" && ConstOperand(next, output) is { } bias)
            {
                beta = Channels(bias, outCh, name);
                output = next.Output[0];
            }
            var act = ActivationAfter(output, name);
            bool afterPool = _constants.Producer(node.Input[0])?.OpType == "GlobalAveragePool";
            return new Conv(node, weight, groups, (int)strides[0], (int)strides[1], gamma, beta, mean, variance, act, afterPool, output);
        }

        /// <summary>BatchNorm's ε in this engine's kernels (MODEL.md).</summary>
        const float BatchNormEpsilon = 1e-5f;

        static float[] Ones(int n, float value = 1f) => Enumerable.Repeat(value, n).ToArray();

        static float[] Channels(ConstTensor t, int channels, string conv) =>
            t.Count == channels ? t.F : throw new InvalidDataException($"convolution '{conv}' has {channels} channels, a per-channel tensor after it {t.Shape}");

        ConstTensor? ConstOperand(NodeProto node, string other)
        {
            if (node.Input.Count != 2) return null;
            string operand = node.Input[0] == other ? node.Input[1] : node.Input[1] == other ? node.Input[0] : "";
            return operand.Length > 0 ? _constants.TryGet(operand) : null;
        }

        /// <summary>The activation applied to <paramref name="output"/>: Relu, HardSwish (the op, or paddle2onnx's
        /// x·clip(x + 3, 0, 6)/6), HardSigmoid with Paddle's slope 0.2 (in SE), or none.</summary>
        Activation ActivationAfter(string output, string conv)
        {
            var consumers = _consumers.GetValueOrDefault(output) ?? [];
            if (consumers.Any(n => n.OpType == "Relu")) return Activation.Relu;
            if (consumers.Any(n => n.OpType == "HardSwish")) return Activation.HardSwish;
            if (consumers.FirstOrDefault(n => n.OpType == "HardSigmoid") is { } hs)
            {
                float alpha = hs.Attribute.FirstOrDefault(a => a.Name == "alpha")?.F ?? 0.2f, beta = hs.Attribute.FirstOrDefault(a => a.Name == "beta")?.F ?? 0.5f;
                if (Math.Abs(alpha - 0.2f) > 1e-6 || Math.Abs(beta - 0.5f) > 1e-6)
                    throw new InvalidDataException($"HardSigmoid after '{conv}' has alpha {alpha}, beta {beta}; Paddle's (0.2, 0.5) is supported");
                return Activation.HardSigmoid;
            }
            if (consumers.FirstOrDefault(n => n.OpType == "Add" && ConstOperand(n, output) is { Count: 1 } c && c.F[0] == 3f) is { } add
                && OnlyConsumer(add.Output[0])?.OpType == "Clip")
                return Activation.HardSwish;
            return Activation.None;
        }

        sealed record SePair(Conv Reduce, Conv Expand);
        sealed record Unit(Conv Expand, Conv Depthwise, SePair? Se, Conv Linear, bool Shortcut);

        /// <summary>Splits the convolutions, in graph order, into stem, residual units (expand, depthwise, SE pair
        /// fed by a global average pool, linear; a shortcut when the linear output is added to the unit's input)
        /// and the last 1×1 convolution.</summary>
        (List<Unit> Units, Conv Stem, Conv Last) ReadUnits(List<Conv> convs) => ReadUnits(convs, (expand, linear) =>
            (_consumers.GetValueOrDefault(linear.Output) ?? []).Any(n => n.OpType == "Add" && n.Input.Contains(expand.Node.Input[0])));

        static (List<Unit> Units, Conv Stem, Conv Last) ReadUnits(List<Conv> convs, Func<Conv, Conv, bool> shortcut)
        {
            var stem = convs[0];
            var last = convs[^1];
            var units = new List<Unit>();
            int i = 1;
            Conv Next(string role)
            {
                if (i >= convs.Count - 1) throw new InvalidDataException($"residual unit {units.Count} ends before its {role} convolution");
                return convs[i++];
            }
            while (i < convs.Count - 1)
            {
                var expand = Next("expand");
                var depthwise = Next("depthwise");
                if (depthwise.Groups != depthwise.Out || depthwise.InPerGroup != 1)
                    throw new InvalidDataException($"unit {units.Count}: convolution '{depthwise.Name}' should be depthwise (groups = channels), has {depthwise.Groups} groups for {depthwise.Out} channels");
                SePair? se = null;
                if (i < convs.Count - 1 && convs[i].AfterPool) se = new SePair(Next("SE reduce"), Next("SE expand"));
                var linear = Next("linear");
                units.Add(new Unit(expand, depthwise, se, linear, shortcut(expand, linear)));
            }
            return (units, stem, last);
        }

        ModelConfig MatchConfig(List<Unit> units, Conv stem, Conv last, int hidden, int classes, int height, int width)
        {
            var backbone = units.Count switch
            {
                15 => Backbone.Large,
                11 => Backbone.Small,
                _ => throw new InvalidDataException($"the backbone has {units.Count} residual units; PaddleOCR's MobileNetV3 has 15 (large) or 11 (small)"),
            };
            // The stage strides are read off the units that down-sample (the first unit's at stage 0, and so on).
            var reference = new ModelConfig(Backbone: backbone).Units;
            var stageUnits = Enumerable.Range(0, units.Count).Where(k => reference[k].StrideH != 1 || k == 0).ToArray();
            var strides = StageStrides.FromArray(stageUnits.Select(k => units[k].Depthwise.StrideH).ToArray());
            string? firstProblem = null;
            foreach (double scale in Scales)
            {
                var config = new ModelConfig(scale, classes, hidden, height, width, backbone, strides, ChannelOrder.Bgr, DynamicWidth: true);
                string? problem = Mismatch(config, units, stem, last);
                if (problem is null) return config;
                if (scale == 0.5) firstProblem = problem;
            }
            throw new InvalidDataException($"the graph is no MobileNetV3-{backbone.ToString().ToLowerInvariant()} of scale {string.Join(", ", Scales)}: at scale 0.5, {firstProblem}");
        }

        static string? Mismatch(ModelConfig config, List<Unit> units, Conv stem, Conv last)
        {
            if ((stem.Out, stem.InPerGroup, stem.Kernel, stem.StrideH, stem.StrideW, stem.Act) != (config.StemChannels, 3, 3, 2, 2, Activation.HardSwish))
                return $"the first convolution '{stem.Name}' is {stem.InPerGroup}→{stem.Out}, k{stem.Kernel}, stride ({stem.StrideH},{stem.StrideW}), {stem.Act}; expected 3→{config.StemChannels}, k3, stride (2,2), HardSwish";
            for (int k = 0; k < units.Count; k++)
            {
                var want = config.Units[k];
                var u = units[k];
                var got = new UnitSpec(u.Depthwise.Kernel, u.Expand.InPerGroup, u.Expand.Out, u.Linear.Out, u.Se is not null, u.Depthwise.Act,
                    u.Depthwise.StrideH, u.Depthwise.StrideW, want.StageUnit);
                if (got != want) return $"unit {k} is {got}, expected {want}";
                if (u.Shortcut != want.HasShortcut) return $"unit {k} {(u.Shortcut ? "has" : "lacks")} the shortcut Add that PaddleOCR's unit {(want.HasShortcut ? "has" : "lacks")}";
                if (u.Expand.Act != want.Act || u.Linear.Act != Activation.None || u.Expand.Kernel != 1 || u.Linear.Kernel != 1)
                    return $"unit {k}: expand '{u.Expand.Name}' {u.Expand.Act}, linear '{u.Linear.Name}' {u.Linear.Act}; expected {want.Act} and none";
                if (u.Se is { } se && (se.Reduce.Out != want.SqueezeChannels || se.Reduce.Act != Activation.Relu || se.Expand.Act != Activation.HardSigmoid))
                    return $"unit {k}: SE '{se.Reduce.Name}' has {se.Reduce.Out} channels and {se.Reduce.Act}/{se.Expand.Act}; expected {want.SqueezeChannels}, Relu/HardSigmoid";
            }
            if ((last.Out, last.Kernel, last.Act) != (config.HeadChannels, 1, Activation.HardSwish))
                return $"the last convolution '{last.Name}' has {last.Out} channels, k{last.Kernel}, {last.Act}; expected {config.HeadChannels}, k1, HardSwish";
            return null;
        }

        void CheckPool()
        {
            var pools = _graph.Node.Where(n => n.OpType == "MaxPool").ToList();
            bool ok = pools.Count == 1 && pools[0].Attribute.All(a => a.Name switch
            {
                "kernel_shape" or "strides" => a.Ints.SequenceEqual([2L, 2L]),
                "pads" => a.Ints.All(p => p == 0),
                "ceil_mode" => a.I == 0,
                _ => true,
            });
            if (!ok) throw new InvalidDataException($"expected one 2×2 stride-2 MaxPool before the LSTMs, found {pools.Count} max-pools");
        }

        static int LstmHidden(NodeProto lstm) =>
            (int)(lstm.Attribute.FirstOrDefault(a => a.Name == "hidden_size")?.I ?? throw new InvalidDataException($"LSTM '{NodeName(lstm)}' has no hidden_size"));

        /// <summary>ONNX's LSTM holds gates in the order i, o, f, c; this engine (as PyTorch and Paddle) i, f, g, o.</summary>
        static readonly int[] OnnxGateOf = [0, 2, 3, 1];

        void SetLstm(NodeProto lstm, int layer, int hidden, Action<string, float[]> set)
        {
            string name = NodeName(lstm);
            var attrs = lstm.Attribute.ToDictionary(a => a.Name);
            if (LstmHidden(lstm) != hidden) throw new InvalidDataException($"LSTM '{name}' has hidden size {LstmHidden(lstm)}, the first {hidden}");
            if (!attrs.TryGetValue("direction", out var dir) || dir.S.ToStringUtf8() != "bidirectional")
                throw new InvalidDataException($"LSTM '{name}' is not bidirectional");
            if (attrs.ContainsKey("activations") || attrs.ContainsKey("clip") || attrs.TryGetValue("input_forget", out var f) && f.I != 0 || attrs.TryGetValue("layout", out var lay) && lay.I != 0)
                throw new InvalidDataException($"LSTM '{name}' sets activations, clip, input_forget or layout; only the default LSTM is supported");
            string Input(int k) => k < lstm.Input.Count ? lstm.Input[k] : "";
            if (Input(4).Length > 0) throw new InvalidDataException($"LSTM '{name}' takes sequence lengths; not supported");
            foreach (int k in new[] { 5, 6 })
                if (Input(k).Length > 0 && !IsZero(Input(k)))
                    throw new InvalidDataException($"LSTM '{name}': the initial {(k == 5 ? "h" : "c")} is not zero");
            var w = _constants.Get(Input(1), $"W of LSTM '{name}'");
            var r = _constants.Get(Input(2), $"R of LSTM '{name}'");
            var b = Input(3).Length > 0 ? _constants.Get(Input(3), $"B of LSTM '{name}'") : new ConstTensor([2, 8 * hidden], new float[16 * hidden], null);
            int g = 4 * hidden, input = (int)w.Dims[2];
            if (w.Dims is not [2, _, _] || w.Dims[1] != g || r.Dims is not [2, _, _] || r.Dims[1] != g || r.Dims[2] != hidden || b.Count != 2 * 2 * g)
                throw new InvalidDataException($"LSTM '{name}': W {w.Shape}, R {r.Shape}, B {b.Shape} do not fit hidden size {hidden}");
            string[] directions = ["forward", "reverse"];
            for (int d = 0; d < 2; d++)
            {
                string p = $"neck.lstm.{layer}.{directions[d]}";
                set($"{p}.weight_ih", Reorder(w.F, d * g * input, input, hidden));
                set($"{p}.weight_hh", Reorder(r.F, d * g * hidden, hidden, hidden));
                set($"{p}.bias_ih", Reorder(b.F, d * 2 * g, 1, hidden));
                set($"{p}.bias_hh", Reorder(b.F, d * 2 * g + g, 1, hidden));
            }
        }

        /// <summary>The 4 gate blocks (each hidden × columns) at <paramref name="offset"/>, from ONNX's order to ours.</summary>
        static float[] Reorder(float[] src, int offset, int columns, int hidden)
        {
            int block = hidden * columns;
            var dst = new float[4 * block];
            for (int gate = 0; gate < 4; gate++) Array.Copy(src, offset + OnnxGateOf[gate] * block, dst, gate * block, block);
            return dst;
        }

        /// <summary>Whether a tensor is all zeros: a zero constant, or a zero constant tiled, sliced or reshaped
        /// to the batch (paddle2onnx's fill_constant_batch_size_like).</summary>
        bool IsZero(string name)
        {
            if (_constants.TryGet(name) is { } c) return c.F.All(v => v == 0);
            var node = _constants.Producer(name);
            return node?.OpType switch
            {
                "Slice" or "Transpose" or "Tile" or "Expand" or "Reshape" or "Unsqueeze" or "Squeeze" or "Identity" or "Cast" => IsZero(node.Input[0]),
                "ConstantOfShape" => node.Attribute.FirstOrDefault(a => a.Name == "value") is not { } v || OnnxConstants.Read(v.T).F.All(x => x == 0),
                _ => false,
            };
        }

        /// <summary>The linear head: MatMul by [2H, C] (or Gemm) and the bias Add; weights returned as [C, 2H].</summary>
        (float[] Weight, float[] Bias) ReadHead(int features)
        {
            var matmuls = _graph.Node.Where(n => n.OpType is "MatMul" or "Gemm").ToList();
            if (matmuls.Count != 1) throw new InvalidDataException($"expected one MatMul or Gemm (the CTC head), found {matmuls.Count}");
            var node = matmuls[0];
            string name = NodeName(node);
            var weight = _constants.Get(node.Input[1], $"weights of the head '{name}'");
            bool transposed = node.OpType == "Gemm" && node.Attribute.Any(a => a.Name == "transB" && a.I == 1);
            if (weight.Dims.Length != 2 || weight.Dims[transposed ? 1 : 0] != features)
                throw new InvalidDataException($"head '{name}' has weights {weight.Shape}; expected [{features}, classes]");
            int classes = (int)weight.Dims[transposed ? 0 : 1];
            var w = weight.F;
            var result = new float[classes * features];
            for (int c = 0; c < classes; c++)
                for (int k = 0; k < features; k++)
                    result[c * features + k] = transposed ? w[c * features + k] : w[k * classes + c];
            ConstTensor? bias = node.OpType == "Gemm" && node.Input.Count > 2 ? _constants.TryGet(node.Input[2])
                : OnlyConsumer(node.Output[0]) is { OpType: "Add" } add ? ConstOperand(add, node.Output[0]) : null;
            if (bias is null || bias.Count != classes) throw new InvalidDataException($"head '{name}' has no bias of {classes} values");
            return (result, bias.F);
        }
    }
}
