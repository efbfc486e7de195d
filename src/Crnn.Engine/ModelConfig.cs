using Crnn.Kernels;

namespace Crnn.Engine;

/// <summary>One residual unit of the MobileNetV3 backbone (MODEL.md's table, after scaling). <paramref name="StageUnit"/>:
/// PaddleOCR gives this unit its stride as an (h, w) tuple, from large_stride / small_stride.</summary>
public sealed record UnitSpec(int Kernel, int In, int Expand, int Out, bool SqueezeExcite, Activation Act, int StrideH, int StrideW, bool StageUnit = false)
{
    /// <summary>Squeeze channels of the SE block: expand / 4 (PaddleOCR's SEModule, reduction 4).</summary>
    public int SqueezeChannels => Expand / 4;
    /// <summary>The shortcut exists only when the unit keeps both shape and channels, and, as in PaddleOCR
    /// (<c>if_shortcut = stride == 1 and ...</c>, false in Python for a tuple), never in a unit given a stride tuple.</summary>
    public bool HasShortcut => !StageUnit && StrideH == 1 && StrideW == 1 && In == Out;
}

/// <summary>PaddleOCR's two MobileNetV3 backbones for recognition (ppocr/modeling/backbones/rec_mobilenet_v3.py).</summary>
public enum Backbone { Large, Small }

/// <summary>Channel order of the input planes: weights trained here read RGB; PaddleOCR's read BGR (cv2.imread).</summary>
public enum ChannelOrder { Rgb, Bgr }

/// <summary>PaddleOCR's large_stride / small_stride: the height strides of the four down-sampling units (the
/// first of the large backbone strides both axes, as Paddle passes it as one int).</summary>
public readonly record struct StageStrides(int S0, int S1, int S2, int S3)
{
    public static StageStrides LargeDefault => new(1, 2, 2, 2);
    /// <summary>PaddleOCR's rec configs for the small backbone all set [1, 2, 2, 2]; Paddle's code default
    /// [2, 2, 2, 2] leaves a feature map 1 high, which the 2×2 pool cannot take.</summary>
    public static StageStrides SmallDefault => new(1, 2, 2, 2);
    public int[] ToArray() => [S0, S1, S2, S3];
    public static StageStrides FromArray(IReadOnlyList<int> s) =>
        s.Count == 4 ? new(s[0], s[1], s[2], s[3]) : throw new ArgumentException($"stage strides need 4 values, got {s.Count}");
    public override string ToString() => $"[{S0}, {S1}, {S2}, {S3}]";
}

/// <summary>
/// The model as data: PaddleOCR's MobileNetV3 CRNN recognizers (rec_mv3_none_bilstm_ctc and its family:
/// large or small backbone, any scale and stage strides, BiLSTM neck of any hidden size, CTC head of any class
/// count) and the preprocessing its weights expect. The seed model is the default: large, scale 0.5, 37
/// classes (blank + 0-9a-z), hidden 96, input 3×32×100 RGB, wide images squeezed to width 100.
/// With <see cref="DynamicWidth"/> (PaddleOCR's own inference) a batch is as wide as its widest image needs,
/// at least <see cref="Width"/>: T = W / 4 steps, so long lines are read whole.
/// </summary>
public sealed record ModelConfig(double Scale = 0.5, int Classes = 37, int Hidden = 96, int Height = 32, int Width = 100,
    Backbone Backbone = Backbone.Large, StageStrides? Strides = null, ChannelOrder ChannelOrder = ChannelOrder.Rgb, bool DynamicWidth = false)
{
    /// <summary>MobileNetV3-large units before scaling: kernel, expand, out, SE, activation, stride stage
    /// (−1: none; the unit at stage k strides the height by strides[k]).</summary>
    static readonly (int K, int Exp, int Out, bool Se, Activation Act, int Stage)[] LargeUnits =
    [
        (3, 16, 16, false, Activation.Relu, 0),
        (3, 64, 24, false, Activation.Relu, 1),
        (3, 72, 24, false, Activation.Relu, -1),
        (5, 72, 40, true, Activation.Relu, 2),
        (5, 120, 40, true, Activation.Relu, -1),
        (5, 120, 40, true, Activation.Relu, -1),
        (3, 240, 80, false, Activation.HardSwish, -1),
        (3, 200, 80, false, Activation.HardSwish, -1),
        (3, 184, 80, false, Activation.HardSwish, -1),
        (3, 184, 80, false, Activation.HardSwish, -1),
        (3, 480, 112, true, Activation.HardSwish, -1),
        (3, 672, 112, true, Activation.HardSwish, -1),
        (5, 672, 160, true, Activation.HardSwish, 3),
        (5, 960, 160, true, Activation.HardSwish, -1),
        (5, 960, 160, true, Activation.HardSwish, -1),
    ];

    /// <summary>MobileNetV3-small units before scaling (same columns).</summary>
    static readonly (int K, int Exp, int Out, bool Se, Activation Act, int Stage)[] SmallUnits =
    [
        (3, 16, 16, true, Activation.Relu, 0),
        (3, 72, 24, false, Activation.Relu, 1),
        (3, 88, 24, false, Activation.Relu, -1),
        (5, 96, 40, true, Activation.HardSwish, 2),
        (5, 240, 40, true, Activation.HardSwish, -1),
        (5, 240, 40, true, Activation.HardSwish, -1),
        (5, 120, 48, true, Activation.HardSwish, -1),
        (5, 144, 48, true, Activation.HardSwish, -1),
        (5, 288, 96, true, Activation.HardSwish, 3),
        (5, 576, 96, true, Activation.HardSwish, -1),
        (5, 576, 96, true, Activation.HardSwish, -1),
    ];

    /// <summary>Strides given explicitly as the backbone's default are the same model as none given (equal configs).</summary>
    public StageStrides? Strides { get; init; } = Strides == DefaultStrides(Backbone) ? null : Strides;

    static StageStrides DefaultStrides(Backbone backbone) => backbone == Backbone.Large ? StageStrides.LargeDefault : StageStrides.SmallDefault;

    /// <summary>The stage strides in use: <see cref="Strides"/>, or the backbone's default.</summary>
    public StageStrides StageStrides => Strides ?? DefaultStrides(Backbone);

    /// <summary>One line naming the architecture, e.g. "MobileNetV3-small ×0.5, strides [1, 2, 2, 2], BiLSTM 48, 97 classes".</summary>
    public string Describe() =>
        $"MobileNetV3-{Backbone.ToString().ToLowerInvariant()} ×{Scale:0.###}, strides {StageStrides}, BiLSTM {Hidden}, {Classes} classes, input 3×{Height}×{Width}{(DynamicWidth ? "+" : "")} {ChannelOrder.ToString().ToUpperInvariant()}";

    /// <summary>PaddleOCR's make_divisible(v, 8): round to a multiple of 8, never below 8 or 90 % of v.</summary>
    public static int MakeDivisible(double v, int divisor = 8)
    {
        int rounded = Math.Max(divisor, (int)(v + divisor / 2.0) / divisor * divisor);
        return rounded < 0.9 * v ? rounded + divisor : rounded;
    }

    /// <summary>Output channels of conv1 (3×3 stride 2, hardswish).</summary>
    public int StemChannels => MakeDivisible(16 * Scale);

    /// <summary>Output channels of conv2, the 1×1 convolution after the last unit.</summary>
    public int HeadChannels => MakeDivisible((Backbone == Backbone.Large ? 960 : 576) * Scale);

    public IReadOnlyList<UnitSpec> Units
    {
        get
        {
            var units = new List<UnitSpec>();
            int inCh = StemChannels;
            var strides = StageStrides.ToArray();
            foreach (var u in Backbone == Backbone.Large ? LargeUnits : SmallUnits)
            {
                int outCh = MakeDivisible(Scale * u.Out);
                int sh = u.Stage < 0 ? 1 : strides[u.Stage];
                // Paddle passes the large backbone's first stride as one int (it strides both axes), the others as (h, 1).
                bool intStride = u.Stage == 0 && Backbone == Backbone.Large;
                int sw = intStride ? sh : 1;
                units.Add(new UnitSpec(u.K, inCh, MakeDivisible(Scale * u.Exp), outCh, u.Se, u.Act, sh, sw, StageUnit: u.Stage >= 0 && !intStride));
                inCh = outCh;
            }
            return units;
        }
    }

    /// <summary>Feature-map height and width after conv1, every unit, and the final 2×2 max-pool.</summary>
    public (int H, int W) StemSize => ((Height + 2 - 3) / 2 + 1, (Width + 2 - 3) / 2 + 1);

    /// <summary>The preprocessing the weights expect, at the configured width (training, and fixed-width models).</summary>
    public Data.ImageFormat Input => new(Height, Width, ChannelOrder);

    /// <summary>Time steps: the feature width after the final 2×2 max-pool (25 for a 100-wide input).</summary>
    public int TimeSteps => TimeStepsAt(Width);

    /// <summary>Time steps for an input <paramref name="width"/> pixels wide.</summary>
    public int TimeStepsAt(int width)
    {
        var (h, w) = (StemSize.H, (width + 2 - 3) / 2 + 1);
        foreach (var u in Units) { h = (h - 1) / u.StrideH + 1; w = (w - 1) / u.StrideW + 1; }
        if (h != 2) throw new InvalidOperationException($"input height {Height} with strides {StageStrides} leaves a feature map {h} high; the max-pool needs 2 (use height 32)");
        return w / 2;
    }

    /// <summary>
    /// The input width of a batch whose widest image has aspect ratio <paramref name="maxRatio"/> (w/h):
    /// <see cref="Width"/>, or with <see cref="DynamicWidth"/> PaddleOCR's max(Width, int(Height·ratio)).
    /// </summary>
    public int InputWidth(double maxRatio) =>
        DynamicWidth ? Math.Clamp((int)Math.Min(Height * maxRatio, MaxDynamicWidth), Width, Math.Max(Width, MaxDynamicWidth)) : Width;

    /// <summary>Widest dynamic input (T = 640): an image wider than 80:1 is squeezed to it, so one odd image
    /// cannot make a batch's buffers arbitrarily large.</summary>
    public const int MaxDynamicWidth = 2560;

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
