using Crnn.Kernels;

namespace Crnn.Engine;

/// <summary>One residual unit of the MobileNetV3 backbone (MODEL.md's table, after scaling).</summary>
public sealed record UnitSpec(int Kernel, int In, int Expand, int Out, bool SqueezeExcite, Activation Act, int StrideH, int StrideW)
{
    /// <summary>Squeeze channels of the SE block: expand / 4 (PaddleOCR's SEModule, reduction 4).</summary>
    public int SqueezeChannels => Expand / 4;
    /// <summary>The shortcut exists only when the unit keeps both shape and channels.</summary>
    public bool HasShortcut => StrideH == 1 && StrideW == 1 && In == Out;
}

/// <summary>
/// The model as data: PaddleOCR's rec_mv3_none_bilstm_ctc (MobileNetV3 large, BiLSTM neck, CTC head).
/// The seed model is the default: scale 0.5, 37 classes (blank + 0-9a-z), hidden 96, input 3×32×100.
/// </summary>
public sealed record ModelConfig(double Scale = 0.5, int Classes = 37, int Hidden = 96, int Height = 32, int Width = 100)
{
    /// <summary>MobileNetV3-large units before scaling: kernel, expand, out, SE, activation, stride (h, w).</summary>
    static readonly (int K, int Exp, int Out, bool Se, Activation Act, int Sh, int Sw)[] LargeUnits =
    [
        (3, 16, 16, false, Activation.Relu, 1, 1),
        (3, 64, 24, false, Activation.Relu, 2, 1),
        (3, 72, 24, false, Activation.Relu, 1, 1),
        (5, 72, 40, true, Activation.Relu, 2, 1),
        (5, 120, 40, true, Activation.Relu, 1, 1),
        (5, 120, 40, true, Activation.Relu, 1, 1),
        (3, 240, 80, false, Activation.HardSwish, 1, 1),
        (3, 200, 80, false, Activation.HardSwish, 1, 1),
        (3, 184, 80, false, Activation.HardSwish, 1, 1),
        (3, 184, 80, false, Activation.HardSwish, 1, 1),
        (3, 480, 112, true, Activation.HardSwish, 1, 1),
        (3, 672, 112, true, Activation.HardSwish, 1, 1),
        (5, 672, 160, true, Activation.HardSwish, 2, 1),
        (5, 960, 160, true, Activation.HardSwish, 1, 1),
        (5, 960, 160, true, Activation.HardSwish, 1, 1),
    ];

    /// <summary>PaddleOCR's make_divisible(v, 8): round to a multiple of 8, never below 8 or 90 % of v.</summary>
    public static int MakeDivisible(double v, int divisor = 8)
    {
        int rounded = Math.Max(divisor, (int)(v + divisor / 2.0) / divisor * divisor);
        return rounded < 0.9 * v ? rounded + divisor : rounded;
    }

    /// <summary>Output channels of conv1 (3×3 stride 2, hardswish).</summary>
    public int StemChannels => MakeDivisible(16 * Scale);

    /// <summary>Output channels of conv2, the 1×1 convolution after the last unit.</summary>
    public int HeadChannels => MakeDivisible(960 * Scale);

    public IReadOnlyList<UnitSpec> Units
    {
        get
        {
            var units = new List<UnitSpec>();
            int inCh = StemChannels;
            foreach (var u in LargeUnits)
            {
                int outCh = MakeDivisible(Scale * u.Out);
                units.Add(new UnitSpec(u.K, inCh, MakeDivisible(Scale * u.Exp), outCh, u.Se, u.Act, u.Sh, u.Sw));
                inCh = outCh;
            }
            return units;
        }
    }

    /// <summary>Feature-map height and width after conv1, every unit, and the final 2×2 max-pool.</summary>
    public (int H, int W) StemSize => ((Height + 2 - 3) / 2 + 1, (Width + 2 - 3) / 2 + 1);

    /// <summary>Time steps: the feature width after the final 2×2 max-pool (25 for a 100-wide input).</summary>
    public int TimeSteps
    {
        get
        {
            var (h, w) = StemSize;
            foreach (var u in Units) { h = (h - 1) / u.StrideH + 1; w = (w - 1) / u.StrideW + 1; }
            if (h != 2) throw new InvalidOperationException($"input height {Height} leaves a feature map {h} high; the max-pool needs 2 (use height 32)");
            return w / 2;
        }
    }

    /// <summary>Trainable parameters (BatchNorm running statistics are not counted).</summary>
    public long ParameterCount
    {
        get
        {
            long n = 3L * StemChannels * 9 + 2L * StemChannels; // conv1 + BN
            foreach (var u in Units)
            {
                n += (long)u.In * u.Expand + 2L * u.Expand;                  // expand 1×1 + BN
                n += (long)u.Expand * u.Kernel * u.Kernel + 2L * u.Expand;   // depthwise + BN
                if (u.SqueezeExcite)
                    n += 2L * u.Expand * u.SqueezeChannels + u.SqueezeChannels + u.Expand; // two 1×1 with bias
                n += (long)u.Expand * u.Out + 2L * u.Out;                    // linear 1×1 + BN
            }
            n += (long)Units[^1].Out * HeadChannels + 2L * HeadChannels;   // conv2 + BN
            n += LstmParameters(HeadChannels) + LstmParameters(2 * Hidden);
            n += 2L * Hidden * Classes + Classes;                           // linear head
            return n;
        }
    }

    /// <summary>One bidirectional LSTM layer: per direction W_ih [4H, in], W_hh [4H, H], b_ih, b_hh [4H].</summary>
    long LstmParameters(int input) => 2L * (4L * Hidden * input + 4L * Hidden * Hidden + 8L * Hidden);
}
