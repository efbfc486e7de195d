using System.Runtime.ExceptionServices;

namespace Crnn.Engine.Data;

/// <summary>
/// Runs another source ahead of its consumer on a background thread, so the next batches are rendered or
/// decoded while the device runs the current step. The consumer gets exactly the inner source's batches in
/// the inner source's order; <see cref="Position"/> counts the samples handed out (not those produced ahead),
/// so checkpoints and resumes do not depend on how far ahead the worker ran.
/// </summary>
/// <remarks>
/// One producer thread is enough for sources that parallelize inside NextBatch (synthetic words render with
/// Parallel.For). Batches live in <c>depth</c> buffers allocated once; a step copies one out and allocates nothing.
/// </remarks>
public sealed class PrefetchingSource : IBatchSource
{
    /// <summary>One preallocated batch.</summary>
    sealed class Slot(int batch, int imageFloats)
    {
        public readonly float[] Images = new float[batch * imageFloats];
        public readonly string[] Texts = new string[batch];
        public readonly int[][] Labels = new int[batch][];
    }

    readonly IBatchSource _inner;
    readonly bool _leaveOpen;
    readonly int _depth;
    readonly object _gate = new();
    Slot[] _slots = [];
    int _batch, _imageFloats;
    // Guarded by _gate: filled slots are _head, _head + 1, ... (_count of them, mod depth); the worker fills the next.
    int _head, _count;
    bool _stopping;
    ExceptionDispatchInfo? _failure;
    Thread? _worker;
    long _position;
    bool _disposed;

    /// <param name="inner">The source to run ahead; its Position is taken over (and it is disposed with this one unless <paramref name="leaveOpen"/>).</param>
    /// <param name="depth">Batches kept ready ahead of the consumer.</param>
    /// <param name="batchSize">Samples per batch; 0: taken from the first <see cref="NextBatch"/>.</param>
    public PrefetchingSource(IBatchSource inner, int depth = 3, int batchSize = 0, bool leaveOpen = false)
    {
        if (depth < 1) throw new ArgumentException($"prefetch depth must be at least 1, got {depth}");
        if (batchSize < 0) throw new ArgumentException($"batch size must be positive, got {batchSize}");
        (_inner, _depth, _batch, _leaveOpen) = (inner, depth, batchSize, leaveOpen);
        _position = inner.Position;
    }

    public int Seed => _inner.Seed;
    public long EpochSize => _inner.EpochSize;

    /// <summary>Samples handed to the consumer. Setting it (a resume) drops the batches made ahead and restarts there.</summary>
    public long Position
    {
        get => _position;
        set
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (value == _position && _failure is null) return; // the batches made ahead are the right ones
            StopWorker();
            (_head, _count, _failure) = (0, 0, null);
            _position = value;
        }
    }

    public void NextBatch(float[] images, string[] texts, int[][] labels)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int batch = texts.Length;
        if (batch == 0 || labels.Length != batch || images.Length % batch != 0)
            throw new ArgumentException($"a batch needs as many texts as labels and a whole image per sample, got {texts.Length} texts, {labels.Length} labels, {images.Length} floats");
        StartWorker(batch, images.Length / batch);

        Slot slot;
        lock (_gate)
        {
            while (_count == 0 && _failure is null) Monitor.Wait(_gate);
            if (_count == 0) _failure!.Throw(); // batches made before the failure are handed out first
            slot = _slots[_head];
        }
        // The worker never writes the head slot while it is counted as filled, so the copy needs no lock.
        slot.Images.CopyTo(images, 0);
        slot.Texts.CopyTo(texts, 0);
        slot.Labels.CopyTo(labels, 0);
        lock (_gate)
        {
            _head = (_head + 1) % _depth;
            _count--;
            Monitor.PulseAll(_gate);
        }
        _position += batch;
    }

    /// <summary>Allocates the buffers on the first batch and starts the worker where the consumer stands.</summary>
    void StartWorker(int batch, int imageFloats)
    {
        if (_slots.Length == 0)
        {
            _batch = _batch == 0 ? batch : _batch;
            _imageFloats = imageFloats;
            _slots = [.. Enumerable.Range(0, _depth).Select(_ => new Slot(_batch, imageFloats))];
        }
        if (batch != _batch || imageFloats != _imageFloats)
            throw new ArgumentException($"prefetching batches of {_batch} images of {_imageFloats} floats, asked for {batch} of {imageFloats}");
        if (_worker != null) return;
        _inner.Position = _position;
        _worker = new Thread(Produce) { IsBackground = true, Name = "crnn prefetch" };
        _worker.Start();
    }

    void Produce()
    {
        try
        {
            while (true)
            {
                int tail;
                lock (_gate)
                {
                    while (_count == _depth && !_stopping) Monitor.Wait(_gate);
                    if (_stopping) return;
                    tail = (_head + _count) % _depth;
                }
                var slot = _slots[tail];
                _inner.NextBatch(slot.Images, slot.Texts, slot.Labels);
                lock (_gate)
                {
                    _count++;
                    Monitor.PulseAll(_gate);
                }
            }
        }
        catch (Exception e)
        {
            // Kept with its original type and stack; the consumer rethrows it once the good batches are used up.
            lock (_gate)
            {
                _failure = ExceptionDispatchInfo.Capture(e);
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>Wakes the worker and waits for it; at most the batch it is producing is finished first.</summary>
    void StopWorker()
    {
        if (_worker is null) return;
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
        _worker.Join();
        _worker = null;
        _stopping = false;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        StopWorker();
        if (!_leaveOpen) _inner.Dispose();
    }
}
