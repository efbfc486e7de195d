using Xunit;

namespace Crnn.Kernels.Tests;

/// <summary>The host code's worker team: every item exactly once, whatever the timing — back-to-back loops
/// (workers spinning), loops after a pause (workers asleep), loops from several threads at once and nested
/// loops (both fall back to Parallel.For), and a throwing item.</summary>
public class HostTeamTests
{
    static void AssertEachOnce(long count, int[] hits, string what)
    {
        for (long i = 0; i < count; i++)
            if (hits[i] != 1) Assert.Fail($"{what}: item {i} of {count} ran {hits[i]} times");
    }

    [Fact]
    public void BackToBackLoopsRunEveryItemOnce()
    {
        var hits = new int[64];
        for (int loop = 0; loop < 20_000; loop++)
        {
            long count = 1 + loop % 64;
            Array.Clear(hits);
            HostTeam.For(count, i => Interlocked.Increment(ref hits[i]));
            AssertEachOnce(count, hits, $"loop {loop}");
        }
    }

    [Fact]
    public void LoopsAfterThePauseThatPutsWorkersToSleep()
    {
        var hits = new int[16];
        for (int loop = 0; loop < 20; loop++)
        {
            Thread.Sleep(2); // ten times the workers' spin
            Array.Clear(hits);
            HostTeam.For(hits.Length, i => { Thread.SpinWait(1000); Interlocked.Increment(ref hits[i]); });
            AssertEachOnce(hits.Length, hits, $"loop {loop}");
        }
    }

    [Fact]
    public void LoopsFromSeveralThreadsAndNestedLoops()
    {
        var errors = new System.Collections.Concurrent.ConcurrentBag<string>();
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            var outer = new int[6];
            for (int loop = 0; loop < 500; loop++)
            {
                Array.Clear(outer);
                var inner = new int[6 * 5];
                HostTeam.For(6, i =>
                {
                    Interlocked.Increment(ref outer[i]);
                    HostTeam.For(5, j => Interlocked.Increment(ref inner[i * 5 + j]));
                });
                if (outer.Any(h => h != 1) || inner.Any(h => h != 1)) errors.Add($"thread {t} loop {loop}");
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Empty(errors);
    }

    [Fact]
    public void AnItemsExceptionReachesTheCallerAndTheTeamGoesOn()
    {
        var hits = new int[10];
        var e = Assert.Throws<AggregateException>(() => HostTeam.For(10, i =>
        {
            Interlocked.Increment(ref hits[i]);
            if (i == 3) throw new InvalidOperationException("item 3");
        }));
        Assert.Equal("item 3", e.InnerException!.Message);
        AssertEachOnce(10, hits, "throwing loop");
        Array.Clear(hits);
        HostTeam.For(10, i => Interlocked.Increment(ref hits[i]));
        AssertEachOnce(10, hits, "next loop");
    }
}
