namespace Crnn.Kernels;

public sealed record CtcResult(float[] Loss, float[] Gradient);

/// <summary>
/// CTC loss and gradient on host arrays, for tests, tools and checks against other implementations. Runs the
/// real <see cref="Ctc"/> kernels on the device named by CRNN_DEVICE (the CPU accelerator when unset),
/// opened once on first use. Allocates per call: not for training loops.
/// </summary>
public static class CtcOnHost
{
    static readonly Lazy<(Device Device, Ctc Ctc)> _engine = new(() =>
    {
        var device = Device.Open(Environment.GetEnvironmentVariable(Device.EnvironmentVariable) is { Length: > 0 } s ? s : "cpu");
        return (device, new Ctc(device));
    });
    static readonly object _gate = new();

    // logits: [batch, time, classes] row-major raw scores; labels: all label sequences concatenated,
    // labelLengths[b] = length of sample b's label. Loss: per sample, -log p(label|x).
    // Gradient: d Loss[b] / d logits, same layout as logits. Runs the real CTC kernels on the device
    // chosen by CRNN_DEVICE (CPU accelerator by default).
    public static CtcResult Compute(float[] logits, int batch, int time, int classes,
        int[] labels, int[] labelLengths, int blank = 0, bool zeroInfinity = false)
    {
        Validate(logits, batch, time, classes, labels, labelLengths, blank);
        lock (_gate)
        {
            var (device, ctc) = _engine.Value;
            using var workspace = ctc.CreateWorkspace(batch, time, classes);
            using var tLogits = device.Upload(logits, logits.Length);
            // A zero-length label array still gets one element, so the kernels never see an empty buffer.
            using var tLabels = device.Upload(labels.Length > 0 ? labels : [0], Math.Max(labels.Length, 1));
            using var tLengths = device.Upload(labelLengths, batch);
            using var tLoss = device.Allocate(batch);
            using var tGradient = device.Allocate(logits.Length);
            ctc.LossAndGradient(tLogits.View, tLabels.View, tLengths.View, tLoss.View, tGradient.View, workspace, blank, zeroInfinity);
            return new CtcResult(tLoss.ToHost(), tGradient.ToHost());
        }
    }

    static void Validate(float[] logits, int batch, int time, int classes, int[] labels, int[] labelLengths, int blank)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(labelLengths);
        if (batch < 1) throw new ArgumentException($"batch must be positive, got {batch}", nameof(batch));
        if (time < 1) throw new ArgumentException($"time must be positive, got {time}", nameof(time));
        if (classes < 1) throw new ArgumentException($"classes must be positive, got {classes}", nameof(classes));
        if (logits.Length != (long)batch * time * classes)
            throw new ArgumentException($"logits length {logits.Length} is not batch·time·classes = {batch}·{time}·{classes} = {(long)batch * time * classes}", nameof(logits));
        if (blank < 0 || blank >= classes) throw new ArgumentException($"blank {blank} is outside [0, {classes})", nameof(blank));
        if (labelLengths.Length != batch)
            throw new ArgumentException($"labelLengths has {labelLengths.Length} entries, expected one per sample ({batch})", nameof(labelLengths));
        long total = 0;
        for (int b = 0; b < batch; b++)
        {
            if (labelLengths[b] < 0) throw new ArgumentException($"labelLengths[{b}] is negative ({labelLengths[b]})", nameof(labelLengths));
            total += labelLengths[b];
        }
        if (total != labels.Length)
            throw new ArgumentException($"the label lengths sum to {total} but labels has {labels.Length} entries", nameof(labels));
        for (int i = 0; i < labels.Length; i++)
        {
            if (labels[i] < 0 || labels[i] >= classes) throw new ArgumentException($"labels[{i}] = {labels[i]} is outside [0, {classes})", nameof(labels));
            if (labels[i] == blank) throw new ArgumentException($"labels[{i}] is the blank ({blank})", nameof(labels));
        }
    }
}
