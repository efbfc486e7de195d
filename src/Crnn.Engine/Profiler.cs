using System.Diagnostics;
using Crnn.Kernels;

namespace Crnn.Engine;

/// <summary>
/// Wall time per layer family (synchronizing the device around each section, so only enable it to
/// measure: it serializes host and device). Layers report sections through <see cref="Section"/>.
/// </summary>
public sealed class Profiler(Device device)
{
    readonly Dictionary<string, double> _milliseconds = [];

    /// <summary>Prefix of the sections being recorded ("forward", "backward", "optimizer").</summary>
    public string Phase { get; set; } = "";

    public IReadOnlyDictionary<string, double> Milliseconds => _milliseconds;

    public Section Measure(string family)
    {
        device.Synchronize();
        return new Section(this, $"{Phase} {family}".Trim(), Stopwatch.GetTimestamp());
    }

    public void Reset() => _milliseconds.Clear();

    void Add(string key, long start)
    {
        device.Synchronize();
        _milliseconds[key] = _milliseconds.GetValueOrDefault(key) + Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    /// <summary>One timed section; a default section (profiling off) does nothing.</summary>
    public readonly struct Section(Profiler? owner, string key, long start) : IDisposable
    {
        public void Dispose() => owner?.Add(key, start);
    }
}
