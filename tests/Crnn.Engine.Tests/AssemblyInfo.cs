using Xunit;

// Tests share the CPU accelerator and the console; run them one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
