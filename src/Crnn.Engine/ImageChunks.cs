using Crnn.Kernels;
using ILGPU;
using ILGPU.Runtime;
using Device = Crnn.Kernels.Device;

namespace Crnn.Engine;

/// <summary>
/// Host inference of a batch with at least one image per core: the batch cut into chunks of up to four images, each
/// run through the whole network by one core (<see cref="HostCores.ForEach"/>: its kernels serial) on a lane network of
/// its own, one lane per core. A chunk's activations stay in that core's L2 cache from layer to layer (at batch 32 a
/// layer's output is up to 8 MB, which went through L3 every layer) and no layer waits for the other cores. Images are
/// independent, so the logits are the whole batch's.
/// </summary>
sealed class ImageChunks : IDisposable
{
    /// <summary>Four images of the seed model's largest activation (336 channels × 4 × 50) take 1 MB: about an L2.</summary>
    const int MaxChunk = 4;

    readonly Network[] _lanes;
    readonly int[] _busy;
    readonly Tensor<float> _logits;
    // The last chunk, when shorter, is copied here and zero-padded to a lane's batch.
    readonly Tensor<float>? _short;
    readonly int _batch, _chunk;
    readonly long _imageLength, _logitsLength;
    bool _profiled;

    /// <summary>Whether a batch this size runs chunked: host kernels, more than one core, at least an image per core.</summary>
    public static bool Suit(Device device, int batch) => device.UsesHost && HostCores.Count > 1 && batch >= HostCores.Count;

    public ImageChunks(int batch, ModelConfig config, Func<int, Network> lane, Device device)
    {
        int cores = HostCores.Count;
        _batch = batch;
        _chunk = Math.Min(MaxChunk, (batch + cores - 1) / cores);
        _imageLength = 3L * config.Height * config.Width;
        _lanes = new Network[Math.Min(cores, Chunks)];
        try
        {
            for (int i = 0; i < _lanes.Length; i++) _lanes[i] = lane(_chunk);
            Steps = _lanes[0].Steps;
            _logitsLength = (long)Steps * config.Classes;
            _logits = device.Allocate(batch, Steps, config.Classes);
            if (batch % _chunk != 0) _short = device.Allocate((int)(_chunk * _imageLength));
        }
        catch
        {
            Dispose();
            throw;
        }
        _busy = new int[_lanes.Length];
    }

    int Chunks => (_batch + _chunk - 1) / _chunk;

    public int Steps { get; }
    public ArrayView<float> Logits => _logits.View;

    /// <summary>With a profiler the chunks run one after another (its sections are not for concurrent use), each on all cores.</summary>
    public void Profile(Profiler? profiler)
    {
        _profiled = profiler != null;
        foreach (var lane in _lanes) lane?.Profile(profiler);
    }

    public ArrayView<float> Forward(ArrayView<float> images)
    {
        if (_profiled) for (int i = 0; i < Chunks; i++) RunChunk(images, i);
        else HostCores.ForEach(Chunks, i => RunChunk(images, i));
        return _logits.View;
    }

    void RunChunk(ArrayView<float> images, int chunk)
    {
        int first = chunk * _chunk, count = Math.Min(_chunk, _batch - first);
        var input = images.SubView(first * _imageLength, count * _imageLength);
        if (count < _chunk)
        {
            input.CopyTo(_short!.View.SubView(0, input.Length));
            _short.View.SubView(input.Length).MemSetToZero();
            input = _short.View;
        }
        int lane = Claim();
        try
        {
            var logits = _lanes[lane].Forward(input, training: false);
            logits.SubView(0, count * _logitsLength).CopyTo(_logits.View.SubView(first * _logitsLength, count * _logitsLength));
        }
        finally { Volatile.Write(ref _busy[lane], 0); }
    }

    /// <summary>A lane no other core is running (one per core, so one is free unless more threads run chunks than there are cores).</summary>
    int Claim()
    {
        for (var spin = new SpinWait(); ; spin.SpinOnce())
            for (int i = 0; i < _busy.Length; i++)
                if (Interlocked.CompareExchange(ref _busy[i], 1, 0) == 0) return i;
    }

    public void Dispose()
    {
        foreach (var lane in _lanes) lane?.Dispose();
        _logits?.Dispose();
        _short?.Dispose();
    }
}
