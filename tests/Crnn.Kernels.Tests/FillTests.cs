using System.Reflection;
using Xunit;

namespace Crnn.Kernels.Tests;

/// <summary>
/// Clearing a view at a non-zero offset clears exactly that range. ILGPU 1.5.3's OpenCL MemSetToZero got this
/// wrong (it cleared elements [4·offset, …) instead), which is why <see cref="Fill"/> exists.
/// </summary>
public class FillTests
{
    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void ClearingASliceAtAnOffsetZeroesExactlyThatRange(string device)
    {
        var dev = TestDevices.Get(device);
        var data = Enumerable.Range(1, 64).Select(i => (float)i).ToArray();
        using var t = dev.Upload(data, 64);
        t.Slice(5, 3, 4).Clear();
        var expected = (float[])data.Clone();
        Array.Clear(expected, 5, 12);
        Assert.Equal(expected, t.ToHost());

        // An int view at an odd offset, one element long, straight through Fill.Zero; then a whole tensor.
        var ints = Enumerable.Range(1, 40).ToArray();
        using var ti = dev.Upload(ints, 40);
        Fill.Zero(dev, ti.View.SubView(7, 1));
        var expectedInts = (int[])ints.Clone();
        expectedInts[7] = 0;
        Assert.Equal(expectedInts, ti.ToHost());
        ti.Clear();
        Assert.Equal(new int[40], ti.ToHost());
    }

    /// <summary>No method of Crnn.Kernels calls ILGPU's MemSet/MemSetToZero (see <see cref="Fill"/>).</summary>
    [Fact]
    public void NothingCallsIlgpuMemSet()
    {
        const BindingFlags all = BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
        var callers = new List<string>();
        foreach (var type in typeof(Device).Assembly.GetTypes())
            foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
            {
                var il = method.GetMethodBody()?.GetILAsByteArray();
                if (il == null) continue;
                var typeArgs = type.IsGenericType ? type.GetGenericArguments() : null;
                var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
                // A byte scan for call/callvirt tokens: a stray match resolves to nothing or to something else.
                for (int i = 0; i + 4 < il.Length; i++)
                {
                    if (il[i] != 0x28 && il[i] != 0x6F) continue;
                    MethodBase? callee;
                    try { callee = method.Module.ResolveMethod(BitConverter.ToInt32(il, i + 1), typeArgs, methodArgs); }
                    catch (Exception e) when (e is ArgumentException or BadImageFormatException) { continue; }
                    if (callee?.DeclaringType?.Namespace?.StartsWith("ILGPU", StringComparison.Ordinal) == true && callee.Name.StartsWith("MemSet", StringComparison.Ordinal))
                        callers.Add($"{type.Name}.{method.Name}");
                }
            }
        Assert.Empty(callers);
    }
}
