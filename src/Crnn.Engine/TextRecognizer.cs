using Crnn.Engine.Data;
using Crnn.Engine.Training;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Device = Crnn.Kernels.Device;

namespace Crnn.Engine;

/// <summary>One symbol read: its text, probability, and where along the image it was read — the CTC time steps
/// of its run and the horizontal pixel range of the original image they cover.</summary>
public sealed record CharacterSpan(string Symbol, float Confidence, int FirstStep, int LastStep, float Left, float Right);

/// <summary>What a <see cref="TextRecognizer"/> read in one image.</summary>
public sealed record TextResult(string Text, float Confidence, IReadOnlyList<CharacterSpan> Characters);

/// <summary>
/// Reads text from images with a trained or imported model, for applications:
/// <code>
/// using var reader = TextRecognizer.Open("models/en-number-mobile");
/// var result = reader.Read("word.png");   // result.Text, result.Confidence, result.Characters
/// </code>
/// Images are preprocessed exactly as the model's config prescribes (size, channel order, dynamic width), and
/// one set of device buffers is reused. Thread-safe: calls from many threads are served one batch at a time
/// and give the same results as sequential calls; <see cref="ReadBatch(IReadOnlyList{Image{Rgb24}})"/> is the
/// faster way to read many images.
/// </summary>
public sealed class TextRecognizer : IDisposable
{
    readonly Device _device;
    readonly CrnnModel _model;
    readonly Recognizer _recognizer;
    readonly Lock _gate = new();
    bool _disposed;

    public ModelConfig Config => _model.Config;
    public CharDictionary Dictionary { get; }
    /// <summary>The device the model runs on, in words.</summary>
    public string DeviceName => _device.ToString();

    TextRecognizer(Device device, Checkpoint checkpoint, int batchSize)
    {
        _device = device;
        Dictionary = checkpoint.Dictionary;
        _model = new CrnnModel(device, checkpoint.Config);
        _model.Load(checkpoint.Parameters, checkpoint.Buffers);
        _recognizer = new Recognizer(_model, Dictionary, batchSize);
    }

    /// <summary>Loads the checkpoint folder <paramref name="modelFolder"/> (model.json + model.safetensors) onto
    /// <paramref name="device"/>: "auto" (CUDA, then OpenCL, then the CPU), "cpu", "cuda" or "opencl[:index]".
    /// <paramref name="kernels"/>: "auto", "host" or "gpu" (see README). Images are read up to
    /// <paramref name="batchSize"/> at a time.</summary>
    public static TextRecognizer Open(string modelFolder, string device = "auto", string? kernels = null, int batchSize = 32)
    {
        if (batchSize < 1) throw new ArgumentException($"batch size must be at least 1, got {batchSize}");
        var checkpoint = Checkpoint.Load(modelFolder);
        var opened = Device.Open(device, kernels);
        try { return new TextRecognizer(opened, checkpoint, batchSize); }
        catch
        {
            opened.Dispose();
            throw;
        }
    }

    /// <summary>Reads an image file (PNG, JPEG, BMP, GIF, WebP, TGA, TIFF, PBM).</summary>
    public TextResult Read(string path)
    {
        using var image = ImageDecoding.LoadFile(path);
        return Read(image);
    }

    /// <summary>Reads an encoded image from a stream (read to its end).</summary>
    public TextResult Read(Stream stream)
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return Read(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
    }

    /// <summary>Reads an encoded image held in memory.</summary>
    public TextResult Read(ReadOnlySpan<byte> encoded)
    {
        using var image = Preprocess.DecodeRgb(encoded, "image bytes");
        return Read(image);
    }

    public TextResult Read(byte[] encoded) => Read(encoded.AsSpan());

    public TextResult Read(Image<Rgb24> image) => ReadBatch([image])[0];

    /// <summary>Reads image files; an unreadable one is an <see cref="InvalidDataException"/> naming it.</summary>
    public IReadOnlyList<TextResult> ReadBatch(IReadOnlyList<string> paths)
    {
        var images = new List<Image<Rgb24>>(paths.Count);
        try
        {
            foreach (var path in paths) images.Add(ImageDecoding.LoadFile(path));
            return ReadBatch(images);
        }
        finally
        {
            foreach (var image in images) image.Dispose();
        }
    }

    /// <summary>Reads many images, in batches of images of similar width; results in the order given.</summary>
    public IReadOnlyList<TextResult> ReadBatch(IReadOnlyList<Image<Rgb24>> images)
    {
        var results = new TextResult[images.Count];
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _recognizer.ReadSteps(images, (i, steps, inputWidth) => results[i] = Result(steps, images[i], inputWidth));
        }
        return results;
    }

    /// <summary>Text and character positions: step t covers input columns [4t, 4t + 4) (the backbone and the pool
    /// halve the width twice); the image was resized to width min(ceil(H·w/h), W) before padding.</summary>
    TextResult Result(GreedySteps steps, Image<Rgb24> image, int inputWidth)
    {
        int resized = Preprocess.ResizedWidth(image.Width, image.Height, Config.Height, inputWidth);
        float scale = image.Width / (float)resized, pixelsPerStep = inputWidth / (float)steps.Steps;
        var characters = new CharacterSpan[steps.Classes.Length];
        for (int k = 0; k < characters.Length; k++)
        {
            float left = Math.Clamp(steps.FirstSteps[k] * pixelsPerStep * scale, 0, image.Width);
            float right = Math.Clamp((steps.LastSteps[k] + 1) * pixelsPerStep * scale, left, image.Width);
            characters[k] = new CharacterSpan(Dictionary.Decode([steps.Classes[k]]), steps.Probabilities[k], steps.FirstSteps[k], steps.LastSteps[k], left, right);
        }
        return new TextResult(_recognizer.Text(steps), steps.Confidence, characters);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _recognizer.Dispose();
            _model.Dispose();
            _device.Dispose();
        }
    }
}
