using System.Runtime.InteropServices;
using System.Text.Json;
using Crnn.Kernels;
using Google.Protobuf;
using Onnx;

namespace Crnn.Engine.Export;

/// <summary>
/// Writes the model as an ONNX inference graph of standard operators (opset 14) that ONNX Runtime, or any
/// other ONNX consumer, runs without this project:
/// Conv (BatchNorm folded in), HardSwish, Relu, GlobalAveragePool, HardSigmoid, Mul, Add, MaxPool, Squeeze,
/// Transpose, LSTM (bidirectional), Reshape and MatMul. Input "image" [N, 3, H, W] with a dynamic batch N,
/// output "logits" [N, T, C]. The dictionary travels in the metadata ("dictionary", a JSON array of the
/// symbols of classes 1…C−1; class 0 is the CTC blank) so a consumer can decode.
/// </summary>
public static class OnnxExport
{
    /// <summary>HardSwish first appears in opset 14; nothing else here needs a newer one.</summary>
    public const int Opset = 14;
    /// <summary>IR version 7 is the one ONNX 1.9 introduced with opset 14: the oldest that can carry it.</summary>
    public const long IrVersion = 7;
    public const string Producer = "crnn";
    public const string InputName = "image", OutputName = "logits", BatchDimension = "N", WidthDimension = "W", StepsDimension = "T";
    public const string DictionaryKey = "dictionary", BlankKey = "blank_index", PreprocessKey = "preprocess";

    /// <summary>Exports a checkpoint's weights and BatchNorm running statistics.</summary>
    public static ModelProto Build(Checkpoint checkpoint) =>
        Build(checkpoint.Config, checkpoint.Dictionary, checkpoint.Parameters, checkpoint.Buffers);

    public static ModelProto Build(ModelConfig config, CharDictionary dictionary, float[] parameters, float[] buffers)
    {
        var layout = new ParameterLayout(config);
        if (dictionary.Classes != config.Classes)
            throw new ArgumentException($"dictionary has {dictionary.Classes} classes with the blank, the model {config.Classes}");
        if (parameters.Length != layout.ParameterCount || buffers.Length != layout.BufferCount)
            throw new ArgumentException($"expected {layout.ParameterCount} parameters and {layout.BufferCount} buffer values, got {parameters.Length} and {buffers.Length}");

        var g = new GraphBuilder(layout, parameters, buffers);
        string x = g.ConvBn("backbone.conv1", InputName, kernel: 3, strideH: 2, strideW: 2, pad: 1, groups: 1, Activation.HardSwish);
        var units = config.Units;
        for (int i = 0; i < units.Count; i++) x = g.ResidualUnit($"backbone.units.{i}", units[i], x);
        x = g.ConvBn("backbone.conv2", x, kernel: 1, strideH: 1, strideW: 1, pad: 0, groups: 1, Activation.HardSwish);
        x = g.Node("MaxPool", [x], "pool", n =>
        {
            n.Attribute.Add(Ints("kernel_shape", 2, 2));
            n.Attribute.Add(Ints("strides", 2, 2));
        });
        // Im2Seq: [N, C, 1, T] → [N, C, T] → time-major [T, N, C], the layout ONNX's LSTM reads (layout 0).
        x = g.Node("Squeeze", [x, g.Constant("im2seq.axes", [2L])], "im2seq.squeeze");
        x = g.Transpose(x, "im2seq.transpose", 2, 0, 1);
        x = g.BiLstm("neck.lstm.0", x, config.Hidden);
        x = g.BiLstm("neck.lstm.1", x, config.Hidden);
        x = g.Linear("head.fc", x, 2 * config.Hidden, config.Classes);
        g.Transpose(x, "head.transpose", OutputName, 1, 0, 2); // [T, N, C] → [N, T, C]

        var graph = g.Graph;
        graph.Name = "crnn";
        // A dynamic-width model (PaddleOCR's) takes any width W and gives T = W/4 steps.
        graph.Input.Add(TensorValue(InputName, BatchDimension, 3, config.Height, config.DynamicWidth ? WidthDimension : config.Width));
        graph.Output.Add(TensorValue(OutputName, BatchDimension, config.DynamicWidth ? StepsDimension : config.TimeSteps, config.Classes));

        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = Producer,
            ProducerVersion = typeof(OnnxExport).Assembly.GetName().Version?.ToString() ?? "",
            DocString = "CRNN text recognizer (MobileNetV3 → BiLSTM → CTC). Greedy CTC decoding: arg-max per step, " +
                        "collapse repeats, drop class 0 (blank); class k ≥ 1 is dictionary[k − 1].",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        AddMetadata(model, DictionaryKey, JsonSerializer.Serialize(dictionary.Symbols));
        AddMetadata(model, BlankKey, CharDictionary.Blank.ToString());
        AddMetadata(model, PreprocessKey, config.DynamicWidth
            ? $"{config.ChannelOrder.ToString().ToUpperInvariant()}, batch width W = max({config.Width}, int({config.Height} * widest w/h in the batch)); " +
              $"resize to height {config.Height} keeping the aspect ratio (width at most W, bilinear), x/255, (x - 0.5)/0.5, right-pad with 0 to W, NCHW"
            : $"{config.ChannelOrder.ToString().ToUpperInvariant()}, resize to height {config.Height} keeping the aspect ratio (width at most {config.Width}, bilinear), " +
              $"x/255, (x - 0.5)/0.5, right-pad with 0 to width {config.Width}, NCHW");
        return model;
    }

    /// <summary>Writes the model to <paramref name="path"/> through a temp file in the same folder and a
    /// rename, so an interrupted export never leaves a half-written model under the final name.</summary>
    public static void Write(ModelProto model, string path)
    {
        string full = Path.GetFullPath(path);
        string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                model.WriteTo(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* report the first failure */ }
            throw;
        }
    }

    static void AddMetadata(ModelProto model, string key, string value) =>
        model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });

    /// <summary>A float tensor's declaration; each dimension is a size (int) or a symbolic name (string).</summary>
    static ValueInfoProto TensorValue(string name, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string symbol ? new TensorShapeProto.Types.Dimension { DimParam = symbol } : new TensorShapeProto.Types.Dimension { DimValue = (int)d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.Add(values);
        return a;
    }

    static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    static AttributeProto String(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    /// <summary>Appends nodes and initializers to one graph, reading weights by their layout names.</summary>
    sealed class GraphBuilder(ParameterLayout layout, float[] parameters, float[] buffers)
    {
        public GraphProto Graph { get; } = new();

        ReadOnlySpan<float> Param(string name) => parameters.AsSpan(layout[name].Offset, layout[name].Length);
        ReadOnlySpan<float> Buffer(string name) => buffers.AsSpan(layout[name].Offset, layout[name].Length);

        /// <summary>A node with one output named <paramref name="name"/>; returns that name.</summary>
        public string Node(string op, string[] inputs, string name, Action<NodeProto>? attributes = null) => Node(op, inputs, name, name, attributes);

        public string Node(string op, string[] inputs, string name, string output, Action<NodeProto>? attributes = null)
        {
            var node = new NodeProto { OpType = op, Name = name };
            node.Input.Add(inputs);
            node.Output.Add(output);
            attributes?.Invoke(node);
            Graph.Node.Add(node);
            return output;
        }

        public string Transpose(string x, string name, params long[] perm) => Transpose(x, name, name, perm);

        public string Transpose(string x, string name, string output, params long[] perm) =>
            Node("Transpose", [x], name, output, n => n.Attribute.Add(Ints("perm", perm)));

        public string Initializer(string name, ReadOnlySpan<float> values, params long[] dims)
        {
            var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
            t.Dims.Add(dims);
            // ONNX raw data is little-endian, as is every machine .NET runs this on.
            t.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values));
            Graph.Initializer.Add(t);
            return name;
        }

        public string Constant(string name, long[] values)
        {
            var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
            t.Dims.Add(values.Length);
            t.Int64Data.Add(values);
            Graph.Initializer.Add(t);
            return name;
        }

        /// <summary>
        /// Convolution + inference-mode BatchNorm as one Conv with bias: BN(conv(x, W)) = conv(x, s·W) + (β − s·μ)
        /// with s = γ/√(σ² + ε) per output channel, computed in float64 so the folded weights round once.
        /// </summary>
        public string ConvBn(string name, string x, int kernel, int strideH, int strideW, int pad, int groups, Activation act)
        {
            var weight = layout[$"{name}.weight"];
            int outCh = weight.Shape[0], perChannel = weight.Length / outCh;
            var w = Param($"{name}.weight");
            var gamma = Param($"{name}.bn.weight");
            var beta = Param($"{name}.bn.bias");
            var mean = Buffer($"{name}.bn.running_mean");
            var variance = Buffer($"{name}.bn.running_var");
            var folded = new float[weight.Length];
            var bias = new float[outCh];
            for (int c = 0; c < outCh; c++)
            {
                double scale = gamma[c] / Math.Sqrt(variance[c] + (double)BatchNorm.Epsilon);
                for (int i = 0; i < perChannel; i++) folded[c * perChannel + i] = (float)(scale * w[c * perChannel + i]);
                bias[c] = (float)(beta[c] - scale * mean[c]);
            }
            string wName = Initializer($"{name}.weight", folded, weight.Shape.Select(d => (long)d).ToArray());
            string bName = Initializer($"{name}.bias", bias, outCh);
            string y = Node("Conv", [x, wName, bName], $"{name}.conv", n =>
            {
                n.Attribute.Add(Ints("kernel_shape", kernel, kernel));
                n.Attribute.Add(Ints("strides", strideH, strideW));
                n.Attribute.Add(Ints("pads", pad, pad, pad, pad));
                n.Attribute.Add(Int("group", groups));
            });
            return Activate(y, name, act);
        }

        string Activate(string x, string name, Activation act) => act switch
        {
            Activation.None => x,
            Activation.Relu => Node("Relu", [x], $"{name}.relu"),
            // ONNX HardSwish is x·max(0, min(1, x/6 + 1/2)) = x·relu6(x + 3)/6, MODEL.md's definition.
            Activation.HardSwish => Node("HardSwish", [x], $"{name}.hardswish"),
            // Paddle's hardsigmoid clip(0.2x + 0.5, 0, 1), not PyTorch's x/6 + 1/2.
            Activation.HardSigmoid => Node("HardSigmoid", [x], $"{name}.hardsigmoid", n =>
            {
                n.Attribute.Add(Float("alpha", 0.2f));
                n.Attribute.Add(Float("beta", 0.5f));
            }),
            _ => throw new ArgumentOutOfRangeException(nameof(act), act, "no ONNX form for this activation"),
        };

        public string ResidualUnit(string name, UnitSpec u, string x)
        {
            string y = ConvBn($"{name}.expand", x, 1, 1, 1, 0, 1, u.Act);
            y = ConvBn($"{name}.depthwise", y, u.Kernel, u.StrideH, u.StrideW, (u.Kernel - 1) / 2, u.Expand, u.Act);
            if (u.SqueezeExcite) y = SqueezeExcite($"{name}.se", y, u);
            y = ConvBn($"{name}.linear", y, 1, 1, 1, 0, 1, Activation.None);
            return u.HasShortcut ? Node("Add", [x, y], $"{name}.add") : y;
        }

        string SqueezeExcite(string name, string x, UnitSpec u)
        {
            string s = Node("GlobalAveragePool", [x], $"{name}.pool");
            s = Node("Conv", [s, Initializer($"{name}.conv1.weight", Param($"{name}.conv1.weight"), u.SqueezeChannels, u.Expand, 1, 1),
                Initializer($"{name}.conv1.bias", Param($"{name}.conv1.bias"), u.SqueezeChannels)], $"{name}.conv1");
            s = Activate(s, $"{name}.conv1", Activation.Relu);
            s = Node("Conv", [s, Initializer($"{name}.conv2.weight", Param($"{name}.conv2.weight"), u.Expand, u.SqueezeChannels, 1, 1),
                Initializer($"{name}.conv2.bias", Param($"{name}.conv2.bias"), u.Expand)], $"{name}.conv2");
            s = Activate(s, $"{name}.conv2", Activation.HardSigmoid);
            return Node("Mul", [x, s], $"{name}.scale"); // [N, C, H, W] · [N, C, 1, 1]
        }

        /// <summary>PyTorch stores gate rows i, f, g, o; ONNX wants i, o, f, c (c = PyTorch's g).</summary>
        static readonly int[] OnnxGateOrder = [0, 3, 1, 2];

        /// <summary>Copies one direction's gate blocks from PyTorch's order into ONNX's.</summary>
        static void ReorderGates(ReadOnlySpan<float> source, Span<float> target)
        {
            int block = source.Length / 4;
            for (int gate = 0; gate < 4; gate++) source.Slice(OnnxGateOrder[gate] * block, block).CopyTo(target.Slice(gate * block, block));
        }

        string Direction(int d) => d == 0 ? "forward" : "reverse";

        /// <summary>W or R: [2, 4H, columns], the forward direction first.</summary>
        float[] StackedGates(string name, string kind)
        {
            int length = layout[$"{name}.forward.{kind}"].Length;
            var stacked = new float[2 * length];
            for (int d = 0; d < 2; d++) ReorderGates(Param($"{name}.{Direction(d)}.{kind}"), stacked.AsSpan(d * length, length));
            return stacked;
        }

        /// <summary>One bidirectional LSTM layer, time-major [T, N, In] → [T, N, 2H] (forward half first).</summary>
        public string BiLstm(string name, string x, int hidden)
        {
            int input = layout[$"{name}.forward.weight_ih"].Shape[1];
            string w = Initializer($"{name}.W", StackedGates(name, "weight_ih"), 2, 4 * hidden, input);
            string r = Initializer($"{name}.R", StackedGates(name, "weight_hh"), 2, 4 * hidden, hidden);
            // B is [2, 8H]: per direction the input biases (Wb) then the recurrent ones (Rb).
            var b = new float[2 * 8 * hidden];
            for (int d = 0; d < 2; d++)
            {
                ReorderGates(Param($"{name}.{Direction(d)}.bias_ih"), b.AsSpan(d * 8 * hidden, 4 * hidden));
                ReorderGates(Param($"{name}.{Direction(d)}.bias_hh"), b.AsSpan(d * 8 * hidden + 4 * hidden, 4 * hidden));
            }
            string bName = Initializer($"{name}.B", b, 2, 8 * hidden);
            string y = Node("LSTM", [x, w, r, bName], $"{name}", n =>
            {
                n.Attribute.Add(String("direction", "bidirectional"));
                n.Attribute.Add(Int("hidden_size", hidden));
            });
            // Y is [T, 2, N, H]: move the direction next to H and merge them, as PyTorch's output is laid out.
            y = Transpose(y, $"{name}.transpose", 0, 2, 1, 3);
            return Node("Reshape", [y, Constant($"{name}.shape", [0, 0, -1])], $"{name}.reshape");
        }

        /// <summary>y = x·Wᵀ + b over the last axis.</summary>
        public string Linear(string name, string x, int inFeatures, int outFeatures)
        {
            var w = Param($"{name}.weight");
            var transposed = new float[w.Length];
            for (int o = 0; o < outFeatures; o++)
                for (int i = 0; i < inFeatures; i++) transposed[i * outFeatures + o] = w[o * inFeatures + i];
            string y = Node("MatMul", [x, Initializer($"{name}.weight_t", transposed, inFeatures, outFeatures)], $"{name}.matmul");
            return Node("Add", [y, Initializer($"{name}.bias", Param($"{name}.bias"), outFeatures)], $"{name}.add");
        }
    }
}
