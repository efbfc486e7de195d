using Crnn.Kernels;

namespace Crnn.Engine;

/// <summary>Every kernel family, loaded once per device and shared by all layers.</summary>
public sealed class KernelSet : IDisposable
{
    public Device Device { get; }
    public Gemm Gemm { get; }
    public GroupedConv GroupedConv { get; }
    public PointwiseConv PointwiseConv { get; }
    public BatchNorm BatchNorm { get; }
    public Activations Activations { get; }
    public Pooling Pooling { get; }
    public ChannelScale ChannelScale { get; }
    public Excitation Excitation { get; }
    public Bias Bias { get; }
    public Transpose Transpose { get; }
    public Lstm Lstm { get; }
    public Linear Linear { get; }
    public Ctc Ctc { get; }
    public GreedyDecoder Decoder { get; }
    public Adam Adam { get; }
    public GradientNorm GradientNorm { get; }

    public KernelSet(Device device)
    {
        Device = device;
        Gemm = new Gemm(device);
        GroupedConv = new GroupedConv(device);
        PointwiseConv = new PointwiseConv(device);
        BatchNorm = new BatchNorm(device);
        Activations = new Activations(device);
        Pooling = new Pooling(device);
        ChannelScale = new ChannelScale(device);
        Excitation = new Excitation(device);
        Bias = new Bias(device);
        Transpose = new Transpose(device);
        Lstm = new Lstm(device);
        Linear = new Linear(device);
        Ctc = new Ctc(device);
        Decoder = new GreedyDecoder(device);
        Adam = new Adam(device);
        GradientNorm = new GradientNorm(device);
    }

    public void Dispose()
    {
        Decoder.Dispose();
        Adam.Dispose();
        GradientNorm.Dispose();
    }
}
