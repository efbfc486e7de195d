using System.Diagnostics;

namespace Crnn.Kernels;

/// <summary>
/// The host code's parallel loops: the calling thread plus a team of ProcessorCount − 1 worker threads that
/// stay awake (spinning) for a short while after each loop, as ONNX Runtime's pool does. An inference forward
/// runs ~35 small loops back to back (1–8 MFLOP each at batch 1); Parallel.For wakes pool threads for each and
/// costs tens of microseconds a loop, the team under one.
/// <para>
/// One loop at a time: a loop started while the team is busy (another thread's, or one nested in a loop body)
/// runs on Parallel.For instead; one inside <see cref="ForEachOnOneCore"/> runs on its thread alone. Items are
/// claimed one by one, so which thread runs an item varies; callers keep results independent of that (each item
/// computed whole by one thread).
/// </para>
/// </summary>
internal static class HostTeam
{
    /// <summary>How long an idle worker spins before it sleeps: long enough to bridge the gaps between one
    /// forward's layers, short enough not to hold a core when the engine is idle.</summary>
    static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 200 µs

    static readonly int Workers = Math.Max(Environment.ProcessorCount - 1, 0);
    static readonly object Gate = new();
    // _generation numbers the loops; _closed is the last loop whose items are all claimed; _joined counts the
    // workers inside a loop. The caller waits only for workers that joined, so a worker the OS has not scheduled
    // yet never holds a loop up: the caller runs the items itself.
    static int _busy, _sleepers, _generation, _closed, _joined;
    static long _next, _count;
    static Action<long>? _body;
    static Exception? _error;

    static HostTeam()
    {
        for (int w = 0; w < Workers; w++)
            new Thread(Work) { IsBackground = true, Name = $"crnn host worker {w + 1}" }.Start();
    }

    [ThreadStatic] static bool t_serial;

    /// <summary>The cores a loop started on this thread spreads over: one inside <see cref="ForEachOnOneCore"/>.</summary>
    public static int Cores => t_serial ? 1 : Environment.ProcessorCount;

    /// <summary>body(i) for every i in [0, count), spread over the cores, each call's own loops run on its core alone
    /// (in order, on the calling thread): for work cut into independent pieces that each fit one core's caches.</summary>
    public static void ForEachOnOneCore(long count, Action<long> body) => For(count, i =>
    {
        bool outer = t_serial;
        t_serial = true;
        try { body(i); }
        finally { t_serial = outer; }
    });

    /// <summary>body(i) for every i in [0, count), spread over the cores; returns when all are done. An
    /// exception from a body is rethrown here in an AggregateException, as Parallel.For does.</summary>
    public static void For(long count, Action<long> body)
    {
        if (count <= 0) return;
        if (count == 1 || Workers == 0 || t_serial) { for (long i = 0; i < count; i++) body(i); return; }
        if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            Parallel.For(0, count, i => body(i));
            return;
        }
        try
        {
            _body = body;
            _count = count;
            _next = 0;
            _error = null;
            // Publish the loop (a full fence), then wake the sleepers: a worker either sees the new generation
            // before it waits or is waiting, under the gate, when the pulse comes.
            int loop = Interlocked.Increment(ref _generation);
            if (Volatile.Read(ref _sleepers) > 0) lock (Gate) Monitor.PulseAll(Gate);
            RunItems();
            // Every item is claimed: close the loop, then wait for the workers still running one.
            Interlocked.Exchange(ref _closed, loop);
            var spin = new SpinWait();
            while (Volatile.Read(ref _joined) > 0) spin.SpinOnce(sleep1Threshold: -1);
            _body = null;
            if (_error is { } error) throw new AggregateException(error);
        }
        finally { Volatile.Write(ref _busy, 0); }
    }

    static void RunItems()
    {
        var body = _body!;
        long count = _count;
        for (long i; (i = Interlocked.Increment(ref _next) - 1) < count;)
        {
            try { body(i); }
            catch (Exception e) { Interlocked.CompareExchange(ref _error, e, null); }
        }
    }

    static void Work()
    {
        int seen = 0;
        while (true)
        {
            seen = WaitForLoop(seen);
            // Join (a full fence), then check that the loop is still open: either the caller, closing it, sees
            // this worker joined and waits, or this worker sees it closed (or superseded) and keeps out.
            Interlocked.Increment(ref _joined);
            if (Volatile.Read(ref _generation) == seen && Volatile.Read(ref _closed) != seen) RunItems();
            Interlocked.Decrement(ref _joined);
        }
    }

    /// <summary>Spins for <see cref="SpinTicks"/>, then sleeps until a loop newer than <paramref name="seen"/> starts.</summary>
    static int WaitForLoop(int seen)
    {
        long until = Stopwatch.GetTimestamp() + SpinTicks;
        int g;
        while ((g = Volatile.Read(ref _generation)) == seen)
        {
            if (Stopwatch.GetTimestamp() > until)
            {
                lock (Gate)
                {
                    Interlocked.Increment(ref _sleepers);
                    while ((g = Volatile.Read(ref _generation)) == seen) Monitor.Wait(Gate);
                    Interlocked.Decrement(ref _sleepers);
                }
                return g;
            }
            Thread.SpinWait(20);
        }
        return g;
    }
}

/// <summary>The host policy's cores for work the engine cuts up itself (a large inference batch, chunk by chunk).</summary>
public static class HostCores
{
    /// <summary>The cores a host loop started on this thread spreads over (one inside <see cref="ForEach"/>).</summary>
    public static int Count => HostTeam.Cores;

    /// <summary>body(i) for every i in [0, count), spread over the cores; each call's host kernels run on its core alone.</summary>
    public static void ForEach(int count, Action<int> body) => HostTeam.ForEachOnOneCore(count, i => body((int)i));
}
