using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using Crnn.Engine;
using Crnn.Engine.Data;
using Crnn.Engine.Training;
using Crnn.Kernels;

namespace Crnn.Cli;

/// <summary><c>crnn predict</c> and <c>crnn eval</c>: read text with a trained model.</summary>
public static class PredictCommand
{
    /// <summary>Images read per model call.</summary>
    public const int Batch = 64;

    /// <summary>Non-ASCII text (CJK, accents) stays readable in the JSON output.</summary>
    static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command CreatePredict()
    {
        var model = new Option<string>("--model") { Description = "checkpoint folder (model.json + model.safetensors)", Required = true };
        var device = DeviceChoice.DeviceOption();
        var kernels = DeviceChoice.KernelsOption();
        var json = new Option<bool>("--json") { Description = "one JSON object per line: {path, text, confidence}" };
        var strict = DataOptions.Strict("image");
        var images = new Argument<string[]>("paths") { Description = "image files, folders (their images, sorted) or glob patterns ('imgs/*.png')", Arity = ArgumentArity.OneOrMore };
        var command = new Command("predict", "Print path<TAB>text<TAB>confidence for each image (exit code 1 when some could not be read).");
        foreach (var o in new Option[] { model, device, kernels, json, strict }) command.Options.Add(o);
        command.Arguments.Add(images);
        command.SetAction(p => UserError.Guard(() => Predict(p.GetValue(model)!, p.GetValue(images)!, new DeviceChoice(p.GetValue(device), p.GetValue(kernels)), Console.Out,
            json: p.GetValue(json), strict: p.GetValue(strict))));
        return command;
    }

    public static Command CreateEval()
    {
        var model = new Option<string>("--model") { Description = "checkpoint folder", Required = true };
        var data = new Option<string[]>("--data") { Description = "label file (image_path<TAB>text) or LMDB folder; repeat for several", Required = true, AllowMultipleArgumentsPerToken = false };
        var device = DeviceChoice.DeviceOption();
        var kernels = DeviceChoice.KernelsOption();
        var benchmark = new Option<bool>("--benchmark-convention") { Description = "score as the scene-text benchmarks do: labels and predictions lower-cased, ASCII letters and digits only (replaces --case)" };
        var labelCase = DataOptions.Case();
        var strict = DataOptions.Strict();
        var json = new Option<bool>("--json") { Description = "print one JSON object instead of a table" };
        var command = new Command("eval", "Accuracy and normalized edit distance of a model on labelled data.");
        foreach (var o in new Option[] { model, data, device, kernels, benchmark, labelCase, strict, json }) command.Options.Add(o);
        command.SetAction(p => UserError.Guard(() => Eval(p.GetValue(model)!, p.GetValue(data)!, new DeviceChoice(p.GetValue(device), p.GetValue(kernels)), Console.Out,
            new EvalOptions(p.GetValue(benchmark), p.GetValue(strict), p.GetValue(json), LabelCases.Parse(p.GetValue(labelCase)!)))));
        return command;
    }

    /// <summary>Returns 0 when every image was read, 1 when some were skipped as unreadable.</summary>
    public static int Predict(string modelFolder, IReadOnlyList<string> inputs, DeviceChoice deviceChoice, TextWriter output,
        bool json = false, bool strict = false, TextWriter? errors = null)
    {
        errors ??= Console.Error;
        var checkpoint = Checkpoint.Load(modelFolder);
        var paths = ImagePaths.Expand(inputs);
        using var device = deviceChoice.Open();
        using var model = Load(device, checkpoint);
        using var recognizer = new Recognizer(model, checkpoint.Dictionary, Batch);
        int unreadable = 0;
        for (int start = 0; start < paths.Count; start += Chunk)
        {
            var chunk = paths.Skip(start).Take(Chunk).ToList();
            var (readable, predictions) = ReadChunk(recognizer, chunk.Count, k => ImageDecoding.LoadFile(chunk[k]), (k, error) =>
            {
                if (strict) throw new InvalidDataException($"{error} (--strict)");
                errors.WriteLine($"skipped: {error}");
                unreadable++;
            });
            for (int i = 0; i < readable.Count; i++)
            {
                string path = chunk[readable[i]];
                output.WriteLine(json
                    ? JsonSerializer.Serialize(new { path, text = predictions[i].Text, confidence = predictions[i].Confidence }, Json)
                    : $"{path}\t{predictions[i].Text}\t{predictions[i].Confidence:F4}");
            }
        }
        if (unreadable > 0) errors.WriteLine($"{unreadable} of {paths.Count} images could not be read");
        return unreadable > 0 ? 1 : 0;
    }

    public sealed record EvalOptions(bool BenchmarkConvention = false, bool Strict = false, bool Json = false, LabelCase Case = LabelCase.Auto);

    /// <summary>Scores the model on each dataset and on all of them together.</summary>
    public static int Eval(string modelFolder, IReadOnlyList<string> data, DeviceChoice deviceChoice, TextWriter output,
        EvalOptions? options = null, TextWriter? errors = null)
    {
        options ??= new EvalOptions();
        errors ??= Console.Error;
        if (data.Count == 0) throw new ArgumentException("give at least one --data");
        var checkpoint = Checkpoint.Load(modelFolder);
        var datasets = new List<ILabeledDataset>();
        try
        {
            // The benchmark convention normalises each label before the dictionary check, so "03/09/2009" is scored as
            // "03092009" rather than skipped for its '/'. A label is still skipped when its normalised form is empty
            // (nothing to score, e.g. "!!"), has a symbol the model cannot output (a dictionary without some letter or
            // digit) or cannot be aligned in the model's time steps, as the benchmarks drop labels over max length.
            var labelCase = options.BenchmarkConvention ? LabelCase.Benchmark : options.Case;
            foreach (var path in data)
            {
                var dataset = Datasets.Open(path, checkpoint.Dictionary, checkpoint.Config.TimeSteps, labelCase, options.Strict);
                datasets.Add(dataset);
                dataset.Skipped.Report(errors, path);
            }
            using var device = deviceChoice.Open();
            using var model = Load(device, checkpoint);
            using var recognizer = new Recognizer(model, checkpoint.Dictionary, Batch);
            var total = new RecognitionMetrics(options.BenchmarkConvention);
            var rows = new List<(string Path, RecognitionMetrics Metrics, int Skipped)>();
            for (int d = 0; d < datasets.Count; d++)
            {
                var (metrics, badImages) = Score(datasets[d], recognizer, options, errors);
                rows.Add((data[d], metrics, datasets[d].Skipped.Count + badImages));
                total.Add(metrics);
            }
            int skipped = rows.Sum(r => r.Skipped);
            if (options.Json)
            {
                output.WriteLine(JsonSerializer.Serialize(new
                {
                    count = total.Count, accuracy = total.Accuracy, norm_edit_distance = total.NormEditDistance, skipped,
                    benchmark_convention = options.BenchmarkConvention,
                    datasets = rows.Select(r => new { path = r.Path, count = r.Metrics.Count, accuracy = r.Metrics.Accuracy, norm_edit_distance = r.Metrics.NormEditDistance, skipped = r.Skipped }),
                }, Json));
            }
            else WriteTable(output, rows, total, skipped, options.BenchmarkConvention);
            return 0;
        }
        finally
        {
            foreach (var dataset in datasets) dataset.Dispose();
        }
    }

    /// <summary>Reads every image of the dataset a chunk at a time; bad images are reported and counted, not scored.</summary>
    static (RecognitionMetrics Metrics, int BadImages) Score(ILabeledDataset dataset, Recognizer recognizer, EvalOptions options, TextWriter errors)
    {
        var metrics = new RecognitionMetrics(options.BenchmarkConvention);
        int bad = 0;
        for (int start = 0; start < dataset.Count; start += Chunk)
        {
            int n = Math.Min(Chunk, dataset.Count - start);
            var (readable, predictions) = ReadChunk(recognizer, n, k => dataset.Load(start + k), (k, error) =>
            {
                if (options.Strict) throw new InvalidDataException($"{dataset.Describe(start + k)}: {error} (--strict)");
                errors.WriteLine($"skipped {dataset.Describe(start + k)}: {error}");
                bad++;
            });
            for (int i = 0; i < readable.Count; i++) metrics.Add(predictions[i].Text, dataset.Text(start + readable[i]));
        }
        if (metrics.Count == 0) throw new InvalidDataException($"no image of {dataset.Name} could be read ({bad} bad)");
        return (metrics, bad);
    }

    /// <summary>Images decoded (in parallel) and read per chunk: bounds memory for folders and datasets of any size.</summary>
    const int Chunk = 4 * Batch;

    /// <summary>Loads images 0..count-1, tells <paramref name="unreadable"/> (index, message) about each that cannot be
    /// decoded, and reads the rest with the model's own preprocessing; returns their indices and predictions.</summary>
    static (List<int> Readable, IReadOnlyList<Recognizer.Prediction> Predictions) ReadChunk(Recognizer recognizer, int count,
        Func<int, SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>> load, Action<int, string> unreadable)
    {
        var (images, failures) = ImageDecoding.LoadParallel(count, load);
        try
        {
            var readable = new List<int>(count);
            for (int k = 0; k < count; k++)
                if (failures[k] is { } error) unreadable(k, error);
                else readable.Add(k);
            return (readable, readable.Count == 0 ? [] : recognizer.Read(readable.Select(k => images[k]!).ToList()));
        }
        finally
        {
            foreach (var image in images) image?.Dispose();
        }
    }

    static void WriteTable(TextWriter output, List<(string Path, RecognitionMetrics Metrics, int Skipped)> rows, RecognitionMetrics total, int skipped, bool benchmark)
    {
        var lines = rows.Select(r => (r.Path, r.Metrics, r.Skipped)).ToList();
        if (rows.Count > 1) lines.Add(("total", total, skipped));
        int width = Math.Max("data".Length, lines.Max(l => l.Path.Length));
        output.WriteLine($"{"data".PadRight(width)}  {"count",9}  {"skipped",7}  {"accuracy",8}  norm_edit_distance");
        foreach (var (path, m, s) in lines)
            output.WriteLine($"{path.PadRight(width)}  {m.Count,9:N0}  {s,7:N0}  {m.Accuracy * 100,6:F2} %  {m.NormEditDistance,18:F4}");
        if (benchmark) output.WriteLine("(benchmark convention: prediction and truth lower-cased, letters and digits only)");
    }

    static CrnnModel Load(Device device, Checkpoint checkpoint)
    {
        var model = new CrnnModel(device, checkpoint.Config);
        model.Load(checkpoint.Parameters, checkpoint.Buffers);
        return model;
    }
}
