using Crnn.Kernels;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Crnn.Engine.Training;

/// <summary>Reads text from preprocessed images with a model in evaluation mode, in batches.</summary>
public sealed class Recognizer
{
    public sealed record Prediction(string Text, float Confidence);

    readonly CrnnModel _model;
    readonly CharDictionary _dictionary;
    readonly int _batchSize;
    readonly Tensor<float>? _input;

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
    /// Predictions for decoded images, preprocessed as the model's config prescribes. As PaddleOCR's inference
    /// does, images are read in order of aspect ratio, so each batch holds images of similar width; a
    /// dynamic-width model reads each batch at the width its widest image needs (<see cref="ModelConfig.InputWidth"/>).
    /// Results come back in the order given.
    /// </summary>
    public IReadOnlyList<Prediction> Read(IReadOnlyList<Image<Rgb24>> images)
    {
        var config = _model.Config;
        double Ratio(int i) => images[i].Width / (double)images[i].Height;
        var order = Enumerable.Range(0, images.Count).OrderBy(Ratio).ToArray();
        var predictions = new Prediction[images.Count];
        // One batch size throughout (the last batch zero-padded), as in Read(float[], int): the model keeps one network.
        int batch = Math.Max(1, Math.Min(_batchSize, images.Count));
        for (int start = 0; start < order.Length; start += batch)
        {
            var slice = order.AsSpan(start, Math.Min(batch, order.Length - start)).ToArray();
            var format = config.Input with { Width = config.InputWidth(Ratio(slice[^1])) };
            var host = new float[batch * format.Size];
            Parallel.For(0, slice.Length, k => format.Write(images[slice[k]], host.AsSpan(k * format.Size, format.Size)));
            using var input = _model.Device.Upload(host, host.Length);
            _model.Forward(input.View, batch, training: false, format.Width);
            var (ids, confidences) = _model.DecodeLast();
            for (int k = 0; k < slice.Length; k++) predictions[slice[k]] = new Prediction(_dictionary.Decode(ids[k]), confidences[k]);
        }
        return predictions;
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
}
