using Crnn.Kernels;
using ILGPU.Runtime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Crnn.Engine.Training;

/// <summary>Reads text from preprocessed images with a model in evaluation mode, in batches.</summary>
public sealed class Recognizer : IDisposable
{
    public sealed record Prediction(string Text, float Confidence);

    readonly CrnnModel _model;
    readonly CharDictionary _dictionary;
    readonly int _batchSize;
    readonly Tensor<float>? _input;
    /// <summary>Device input of <see cref="ReadSteps"/>: grown to the largest batch read, then reused.</summary>
    Tensor<float>? _staging;

    public Recognizer(CrnnModel model, CharDictionary dictionary, int batchSize = 32) => (_model, _dictionary, _batchSize) = (model, dictionary, batchSize);

    /// <summary>Reads through <paramref name="input"/>, a device buffer of whole batches ([B, 3, H, W]), always at
    /// batch B: given the training batch's buffer, it runs on the training network and allocates nothing.</summary>
    public Recognizer(CrnnModel model, CharDictionary dictionary, Tensor<float> input)
        : this(model, dictionary, input.Length / ImageSize(model))
    {
        if (input.Length % ImageSize(model) != 0) throw new ArgumentException($"{input} does not hold whole images of {ImageSize(model)} floats");
        _input = input;
    }

    static int ImageSize(CrnnModel model) => 3 * model.Config.Height * model.Config.Width;

    /// <summary>Predictions for <paramref name="count"/> images laid out [count, 3, H, W].</summary>
    public IReadOnlyList<Prediction> Read(float[] images, int count)
    {
        int size = ImageSize(_model);
        if (images.Length != count * size) throw new ArgumentException($"expected {count} images of {size} floats, got {images.Length} floats");
        return Read(count, (start, n, chunk) => images.AsSpan(start * size, n * size).CopyTo(chunk));
    }

    /// <summary>
    /// Predictions for decoded images, preprocessed as the model's config prescribes (see <see cref="ReadSteps"/>),
    /// in the order given.
    /// </summary>
    public IReadOnlyList<Prediction> Read(IReadOnlyList<Image<Rgb24>> images)
    {
        var predictions = new Prediction[images.Count];
        ReadSteps(images, (i, steps, _) => predictions[i] = new Prediction(Text(steps), steps.Confidence));
        return predictions;
    }

    /// <summary>The text of a greedy decoding: the kept classes' symbols.</summary>
    public string Text(GreedySteps steps) => _dictionary.Decode(steps.Classes);

    /// <summary>
    /// Reads decoded images and hands each one's greedy CTC decoding, with the time step of every kept symbol,
    /// to <paramref name="consume"/> (image index, decoding, input width of its batch). As PaddleOCR's inference
    /// does, images are read in order of aspect ratio, so each batch holds images of similar width; a
    /// dynamic-width model reads each batch at the width its widest image needs (<see cref="ModelConfig.InputWidth"/>).
    /// </summary>
    public void ReadSteps(IReadOnlyList<Image<Rgb24>> images, Action<int, GreedySteps, int> consume)
    {
        var config = _model.Config;
        double Ratio(int i) => images[i].Width / (double)images[i].Height;
        var order = Enumerable.Range(0, images.Count).OrderBy(Ratio).ToArray();
        // One batch size throughout (the last batch zero-padded), as in Read(float[], int): the model keeps one network.
        int batch = Math.Max(1, Math.Min(_batchSize, images.Count));
        for (int start = 0; start < order.Length; start += batch)
        {
            var slice = order.AsSpan(start, Math.Min(batch, order.Length - start)).ToArray();
            var format = config.Input with { Width = config.InputWidth(Ratio(slice[^1])) };
            var host = new float[batch * format.Size];
            Parallel.For(0, slice.Length, k => format.Write(images[slice[k]], host.AsSpan(k * format.Size, format.Size)));
            if (_staging is null || _staging.Length < host.Length)
            {
                _staging?.Dispose();
                _staging = null;
                _staging = _model.Device.Allocate(host.Length);
            }
            var input = _staging.View.SubView(0, host.Length);
            input.CopyFromCPU(host);
            var logits = _model.Forward(input, batch, training: false, format.Width);
            int steps = _model.Steps, classes = config.Classes;
            var values = new float[slice.Length * steps * classes];
            logits.SubView(0, values.Length).CopyToCPU(values);
            for (int k = 0; k < slice.Length; k++)
                consume(slice[k], GreedySteps.Decode(values.AsSpan(k * steps * classes, steps * classes), steps, classes), format.Width);
        }
    }

    /// <summary>Accuracy and normalized edit distance of the model on labelled images.</summary>
    public RecognitionMetrics Evaluate(float[] images, IReadOnlyList<string> texts) => Score(Read(images, texts.Count), texts);

    /// <summary>Accuracy and normalized edit distance on a validation set, read a batch at a time.</summary>
    public RecognitionMetrics Evaluate(ValidationSet set)
    {
        if (set.ImageSize != ImageSize(_model)) throw new ArgumentException($"validation images have {set.ImageSize} floats, the model takes {ImageSize(_model)}");
        return Score(Read(set.Count, set.Read), set.Texts);
    }

    static RecognitionMetrics Score(IReadOnlyList<Prediction> predictions, IReadOnlyList<string> texts)
    {
        var metrics = new RecognitionMetrics();
        for (int i = 0; i < texts.Count; i++) metrics.Add(predictions[i].Text, texts[i]);
        return metrics;
    }

    IReadOnlyList<Prediction> Read(int count, ValidationSet.Reader read)
    {
        int size = ImageSize(_model);
        var predictions = new List<Prediction>(count);
        // One batch size throughout (the last batch zero-padded): evaluation-mode samples are independent,
        // and the model keeps the layers of a single batch size.
        int batch = _input is null ? Math.Max(1, Math.Min(_batchSize, count)) : _batchSize;
        using var owned = _input is null ? _model.Device.Allocate(batch * size) : null;
        var input = _input ?? owned!;
        var chunk = new float[batch * size];
        for (int start = 0; start < count; start += batch)
        {
            int n = Math.Min(batch, count - start);
            Array.Clear(chunk);
            read(start, n, chunk);
            input.CopyFrom(chunk);
            _model.Forward(input.View, batch, training: false);
            var (ids, confidences) = _model.DecodeLast();
            for (int b = 0; b < n; b++) predictions.Add(new Prediction(_dictionary.Decode(ids[b]), confidences[b]));
        }
        return predictions;
    }

    /// <summary>Frees the device input of <see cref="ReadSteps"/> (the model's buffers belong to the model).</summary>
    public void Dispose()
    {
        _staging?.Dispose();
        _staging = null;
    }
}

/// <summary>
/// Greedy CTC decoding of one image's logits [T, C] on the host, as <see cref="GreedyDecoder"/> does on the
/// device: arg-max per step with its softmax probability, repeats collapsed, blanks (class 0) dropped;
/// confidence is the mean probability of the kept steps (the first step of each run). Keeps each kept class's
/// first and last step, which place it along the image.
/// </summary>
public sealed record GreedySteps(int[] Classes, int[] FirstSteps, int[] LastSteps, float[] Probabilities, int Steps)
{
    public float Confidence => Probabilities.Length > 0 ? Probabilities.Average() : 0f;

    public static GreedySteps Decode(ReadOnlySpan<float> logits, int steps, int classes)
    {
        List<int> ids = [], first = [], last = [];
        List<float> probs = [];
        int previous = -1;
        for (int t = 0; t < steps; t++)
        {
            var row = logits.Slice(t * classes, classes);
            float best = row[0], sum = 1f;
            int arg = 0;
            for (int c = 1; c < classes; c++)
            {
                float x = row[c];
                if (x > best) { sum = sum * MathF.Exp(best - x) + 1f; best = x; arg = c; }
                else sum += MathF.Exp(x - best);
            }
            if (arg != CharDictionary.Blank && arg != previous)
            {
                ids.Add(arg);
                first.Add(t);
                last.Add(t);
                probs.Add(1f / sum);
            }
            else if (arg != CharDictionary.Blank) last[^1] = t; // the run of the last kept class goes on
            previous = arg;
        }
        return new GreedySteps([.. ids], [.. first], [.. last], [.. probs], steps);
    }
}
