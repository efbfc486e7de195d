using Crnn.Kernels;

namespace Crnn.Engine.Training;

/// <summary>Reads text from preprocessed images with a model in evaluation mode, in batches.</summary>
public sealed class Recognizer(CrnnModel model, CharDictionary dictionary, int batchSize = 32)
{
    public sealed record Prediction(string Text, float Confidence);

    /// <summary>Predictions for <paramref name="count"/> images laid out [count, 3, H, W].</summary>
    public IReadOnlyList<Prediction> Read(float[] images, int count)
    {
        int size = 3 * model.Config.Height * model.Config.Width;
        if (images.Length != count * size) throw new ArgumentException($"expected {count} images of {size} floats, got {images.Length} floats");
        var predictions = new List<Prediction>(count);
        // One batch size throughout (the last batch zero-padded): evaluation-mode samples are independent,
        // and the model keeps the layers of a single batch size.
        int batch = Math.Max(1, Math.Min(batchSize, count));
        using var input = model.Device.Allocate(batch * size);
        var chunk = new float[batch * size];
        for (int start = 0; start < count; start += batch)
        {
            int n = Math.Min(batch, count - start);
            Array.Clear(chunk);
            images.AsSpan(start * size, n * size).CopyTo(chunk);
            input.CopyFrom(chunk);
            model.Forward(input.View, batch, training: false);
            var (ids, confidences) = model.DecodeLast();
            for (int b = 0; b < n; b++) predictions.Add(new Prediction(dictionary.Decode(ids[b]), confidences[b]));
        }
        return predictions;
    }

    /// <summary>Accuracy and normalized edit distance of the model on labelled images.</summary>
    public RecognitionMetrics Evaluate(float[] images, IReadOnlyList<string> texts)
    {
        var metrics = new RecognitionMetrics();
        var predictions = Read(images, texts.Count);
        for (int i = 0; i < texts.Count; i++) metrics.Add(predictions[i].Text, texts[i]);
        return metrics;
    }
}
