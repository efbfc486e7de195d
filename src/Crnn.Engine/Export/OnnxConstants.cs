using Onnx;

namespace Crnn.Engine.Export;

/// <summary>A constant tensor of an ONNX graph: float values or int64 values (shapes, indices), row-major.</summary>
public sealed record ConstTensor(long[] Dims, float[]? Floats, long[]? Ints)
{
    public long Count => Dims.Aggregate(1L, (a, b) => a * b);
    public float[] F => Floats ?? Ints!.Select(v => (float)v).ToArray();
    public long[] I => Ints ?? Floats!.Select(v => (long)v).ToArray();
    public string Shape => $"[{string.Join(", ", Dims)}]";
}

/// <summary>
/// Evaluates the constant part of an ONNX graph: initializers, Constant nodes, and the shape operators that
/// exporters put between stored weights and the ops that use them (paddle2onnx stacks and re-orders the LSTM
/// gates with Unsqueeze, Concat and Slice; SE biases pass through Reshape). A value that depends on the graph
/// input (through Shape, for instance) is not constant: <see cref="TryGet"/> returns null for it.
/// </summary>
public sealed class OnnxConstants
{
    readonly Dictionary<string, ConstTensor> _values = [];
    readonly Dictionary<string, NodeProto> _producer = [];
    readonly HashSet<string> _notConstant = [];

    public OnnxConstants(GraphProto graph)
    {
        foreach (var t in graph.Initializer) _values[t.Name] = Read(t);
        foreach (var n in graph.Node)
            foreach (var o in n.Output)
                if (o.Length > 0) _producer[o] = n;
        foreach (var input in graph.Input) if (!_values.ContainsKey(input.Name)) _notConstant.Add(input.Name);
    }

    public NodeProto? Producer(string name) => _producer.GetValueOrDefault(name);

    /// <summary>The value of <paramref name="name"/> when the graph fixes it; null when it depends on the input.</summary>
    public ConstTensor? TryGet(string name)
    {
        if (_values.TryGetValue(name, out var value)) return value;
        if (_notConstant.Contains(name) || !_producer.TryGetValue(name, out var node)) return null;
        value = Evaluate(node);
        if (value is null) _notConstant.Add(name);
        else _values[name] = value;
        return value;
    }

    public ConstTensor Get(string name, string what) =>
        TryGet(name) ?? throw new InvalidDataException($"{what} ('{name}') is not a constant of the graph");

    ConstTensor? Evaluate(NodeProto node)
    {
        if (node.OpType == "Constant")
            return node.Attribute.FirstOrDefault(a => a.Name == "value") is { } v ? Read(v.T) : null;
        var inputs = new List<ConstTensor?>();
        foreach (var i in node.Input) inputs.Add(i.Length == 0 ? null : TryGet(i));
        if (node.Input.Count == 0 || inputs[0] is null) return null;
        var x = inputs[0]!;
        ConstTensor? Input(int k) => k < inputs.Count ? inputs[k] : null;
        switch (node.OpType)
        {
            case "Identity": case "Cast" when x.Floats is not null && IntAttr(node, "to") == (long)TensorProto.Types.DataType.Float:
                return x;
            case "Reshape":
                return Input(1) is { } shape ? Reshape(x, shape.I) : null;
            case "Unsqueeze":
            {
                var axes = Input(1)?.I ?? Ints(node, "axes");
                var dims = x.Dims.ToList();
                foreach (long a in axes.Select(a => a < 0 ? a + x.Dims.Length + axes.Length : a).Order()) dims.Insert((int)a, 1);
                return x with { Dims = [.. dims] };
            }
            case "Squeeze":
            {
                var axes = (Input(1)?.I ?? Ints(node, "axes")).Select(a => a < 0 ? a + x.Dims.Length : a).ToHashSet();
                return x with { Dims = x.Dims.Where((d, k) => axes.Count == 0 ? d != 1 : !axes.Contains(k)).ToArray() };
            }
            case "Concat":
                return inputs.Any(i => i is null) ? null : Concat(inputs!, (int)IntAttr(node, "axis"));
            case "Slice":
            {
                // opset ≥ 10: starts, ends, axes, steps as inputs; before: attributes
                long[] starts = Input(1)?.I ?? Ints(node, "starts"), ends = Input(2)?.I ?? Ints(node, "ends");
                long[] axes = Input(3)?.I ?? (node.Attribute.Any(a => a.Name == "axes") ? Ints(node, "axes") : [.. Enumerable.Range(0, starts.Length).Select(a => (long)a)]);
                long[] steps = Input(4)?.I ?? [.. starts.Select(_ => 1L)];
                for (int k = 0; k < starts.Length; k++)
                {
                    if (steps[k] != 1) return null;
                    int axis = (int)(axes[k] < 0 ? axes[k] + x.Dims.Length : axes[k]);
                    long n = x.Dims[axis];
                    long start = Math.Clamp(starts[k] < 0 ? starts[k] + n : starts[k], 0, n);
                    long end = Math.Clamp(ends[k] < 0 ? ends[k] + n : ends[k], 0, n);
                    x = Narrow(x, axis, start, Math.Max(0, end - start));
                }
                return x;
            }
            default:
                return null;
        }
    }

    static long IntAttr(NodeProto node, string name) => node.Attribute.FirstOrDefault(a => a.Name == name)?.I ?? 0;

    static long[] Ints(NodeProto node, string name) => node.Attribute.FirstOrDefault(a => a.Name == name)?.Ints.ToArray() ?? [];

    static ConstTensor Reshape(ConstTensor x, long[] shape)
    {
        var dims = shape.Select((d, k) => d == 0 ? x.Dims[k] : d).ToArray();
        int unknown = Array.IndexOf(dims, -1L);
        if (unknown >= 0) dims[unknown] = x.Count / dims.Where(d => d != -1).Aggregate(1L, (a, b) => a * b);
        if (dims.Aggregate(1L, (a, b) => a * b) != x.Count)
            throw new InvalidDataException($"cannot reshape {x.Shape} to [{string.Join(", ", shape)}]");
        return x with { Dims = dims };
    }

    /// <summary>Elements [start, start + length) along one axis.</summary>
    static ConstTensor Narrow(ConstTensor x, int axis, long start, long length)
    {
        long outer = x.Dims[..axis].Aggregate(1L, (a, b) => a * b), inner = x.Dims[(axis + 1)..].Aggregate(1L, (a, b) => a * b);
        var dims = (long[])x.Dims.Clone();
        dims[axis] = length;
        T[] Take<T>(T[] src)
        {
            var dst = new T[outer * length * inner];
            for (long o = 0; o < outer; o++)
                Array.Copy(src, (o * x.Dims[axis] + start) * inner, dst, o * length * inner, length * inner);
            return dst;
        }
        return new ConstTensor(dims, x.Floats is null ? null : Take(x.Floats), x.Ints is null ? null : Take(x.Ints));
    }

    static ConstTensor Concat(List<ConstTensor> parts, int axis)
    {
        var first = parts[0];
        if (axis < 0) axis += first.Dims.Length;
        long outer = first.Dims[..axis].Aggregate(1L, (a, b) => a * b);
        var dims = (long[])first.Dims.Clone();
        dims[axis] = parts.Sum(p => p.Dims[axis]);
        long inner = first.Dims[(axis + 1)..].Aggregate(1L, (a, b) => a * b);
        bool floats = parts.All(p => p.Floats is not null);
        var f = floats ? new float[outer * dims[axis] * inner] : null;
        var i = floats ? null : new long[outer * dims[axis] * inner];
        long offset = 0;
        foreach (var p in parts)
        {
            long chunk = p.Dims[axis] * inner;
            for (long o = 0; o < outer; o++)
            {
                if (floats) Array.Copy(p.Floats!, o * chunk, f!, o * dims[axis] * inner + offset, chunk);
                else Array.Copy(p.I, o * chunk, i!, o * dims[axis] * inner + offset, chunk);
            }
            offset += chunk;
        }
        return new ConstTensor(dims, f, i);
    }

    /// <summary>A stored tensor: float (typed or raw little-endian data) or an integer type read as int64.</summary>
    public static ConstTensor Read(TensorProto t)
    {
        var dims = t.Dims.ToArray();
        long count = dims.Aggregate(1L, (a, b) => a * b);
        var raw = t.RawData.Span;
        switch ((TensorProto.Types.DataType)t.DataType)
        {
            case TensorProto.Types.DataType.Float:
                return new ConstTensor(dims, raw.Length > 0 ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(raw).ToArray() : [.. t.FloatData], null);
            case TensorProto.Types.DataType.Int64:
                return new ConstTensor(dims, null, raw.Length > 0 ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(raw).ToArray() : [.. t.Int64Data]);
            case TensorProto.Types.DataType.Int32:
                return new ConstTensor(dims, null, raw.Length > 0
                    ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(raw).ToArray().Select(v => (long)v).ToArray()
                    : [.. t.Int32Data.Select(v => (long)v)]);
            default:
                throw new InvalidDataException($"tensor '{t.Name}' has data type {(TensorProto.Types.DataType)t.DataType}; only float, int32 and int64 are read");
        }
    }
}
