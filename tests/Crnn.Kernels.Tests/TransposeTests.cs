using Xunit;

namespace Crnn.Kernels.Tests;

public class TransposeTests
{
    public static TheoryData<string, int, int, int> Cases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (var device in TestDevices.Names)
        {
            data.Add(device, 1, 1, 1);
            data.Add(device, 3, 7, 97);
            data.Add(device, 2, 33, 25);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MovesEveryElementAndTransposesBack(string device, int batch, int rows, int cols)
    {
        var dev = TestDevices.Get(device);
        int n = batch * rows * cols;
        var x = Reference.Random(n, 5);
        using var tx = dev.Upload(x, n);
        using var ty = Reference.NaNs(dev, n);
        using var back = Reference.NaNs(dev, n);
        var transpose = new Transpose(dev);
        transpose.Run(tx.View, ty.View, batch, rows, cols);
        var expected = new double[n];
        for (int b = 0; b < batch; b++)
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    expected[(b * cols + c) * rows + r] = x[(b * rows + r) * cols + c];
        Reference.AssertClose(expected, ty.ToHost(), 0, "transposed");
        transpose.Run(ty.View, back.View, batch, cols, rows);
        Assert.Equal(x, back.ToHost());
    }

    [Fact]
    public void RejectsWrongLengths()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        using var x = dev.Allocate(6);
        using var y = dev.Allocate(5);
        Assert.Throws<ArgumentException>(() => new Transpose(dev).Run(x.View, y.View, 1, 2, 3));
    }
}
