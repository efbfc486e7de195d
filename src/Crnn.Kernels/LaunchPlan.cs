namespace Crnn.Kernels;

/// <summary>One kernel launch: its grid (groups × threads), the threads' worth of independent work it exposes,
/// and its floating-point operations and bytes moved (estimates from the shapes, for the launch report).</summary>
public sealed record PlannedLaunch(string Kernel, int Groups, int GroupSize, long Work, double Flops, double Bytes)
{
    /// <summary>The 256-thread groups' worth of independent work: how many SMs' worth of groups it can feed.</summary>
    public long ParallelGroups => Math.Max(1, (Work + 255) / 256);
}

/// <summary>The launches of some work (one training step in <c>crnn bench --launches</c>), in order.</summary>
public sealed class LaunchPlan
{
    readonly List<PlannedLaunch> _launches = [];

    /// <summary>Record launches without running them (the plan does not depend on the data).</summary>
    public bool DryRun { get; init; }
    public IReadOnlyList<PlannedLaunch> Launches => _launches;

    public void Add(PlannedLaunch launch) => _launches.Add(launch);

    /// <summary>The share of all FLOPs that run in launches exposing fewer than <paramref name="groups"/> parallel groups.</summary>
    public double SmallGridFlopShare(int groups)
    {
        double total = _launches.Sum(l => l.Flops);
        return total == 0 ? 0 : _launches.Where(l => l.ParallelGroups < groups).Sum(l => l.Flops) / total;
    }
}
