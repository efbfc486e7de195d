using System.Globalization;
using System.Text.Json;

namespace Crnn.Engine.Training;

/// <summary>
/// The metrics files of a run: <c>metrics.jsonl</c> and <c>metrics.csv</c> (one row per logged step, the same
/// columns) and <c>metrics.png</c> (loss and validation accuracy against the step), redrawn on request.
/// A resumed run keeps the rows up to the checkpoint's step and appends; rows past it came from steps that
/// are trained again, so they are dropped rather than duplicated.
/// </summary>
public sealed class MetricsLog : IDisposable
{
    public const string JsonFile = "metrics.jsonl", CsvFile = "metrics.csv", PlotFile = "metrics.png";

    /// <summary>Column names of metrics.csv, which are also the keys of each metrics.jsonl object.</summary>
    public static readonly string[] Columns =
        ["step", "epoch", "loss", "lr", "images_per_sec", "skipped_steps", "val_accuracy", "val_norm_edit_distance"];

    readonly string _folder;
    readonly StreamWriter _json, _csv;
    readonly List<(double Step, double Loss)> _loss = [];
    readonly List<(double Step, double Accuracy)> _accuracy = [];

    MetricsLog(string folder, StreamWriter json, StreamWriter csv)
    {
        (_folder, _json, _csv) = (folder, json, csv);
    }

    /// <summary>Opens the files in <paramref name="folder"/>: new ones for a fresh run (step 0), else those
    /// already there cut back to <paramref name="resumeStep"/>.</summary>
    public static MetricsLog Open(string folder, long resumeStep)
    {
        string jsonPath = Path.Combine(folder, JsonFile), csvPath = Path.Combine(folder, CsvFile);
        try
        {
            var jsonRows = resumeStep > 0 && File.Exists(jsonPath) ? File.ReadAllLines(jsonPath).Where(l => JsonStep(l) <= resumeStep).ToList() : [];
            var csvRows = resumeStep > 0 && File.Exists(csvPath) ? File.ReadAllLines(csvPath).Skip(1).Where(l => CsvStep(l) <= resumeStep).ToList() : [];
            // Rewritten through a temp file: a process killed here keeps the rows it had.
            Replace(jsonPath, jsonRows);
            Replace(csvPath, [string.Join(',', Columns), .. csvRows]); // the header once, at the top
            var log = new MetricsLog(folder, new StreamWriter(jsonPath, append: true), new StreamWriter(csvPath, append: true));
            foreach (var row in csvRows) log.Remember(row.Split(',').Select(ParseOrNull).ToArray());
            return log;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TrainingException($"cannot write metrics in '{folder}': {e.Message.Split('\n')[0]}", e);
        }
    }

    static void Replace(string path, IEnumerable<string> lines)
    {
        string temp = path + ".tmp";
        File.WriteAllLines(temp, lines);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Appends one logged step to both files (flushed, so they can be followed while training).</summary>
    public void Append(StepReport r)
    {
        object?[] values = [r.Step, r.Epoch, r.Loss, r.LearningRate, r.ImagesPerSecond, r.SkippedSteps, r.ValAccuracy, r.ValNormEditDistance];
        var row = new Dictionary<string, object?>();
        for (int i = 0; i < Columns.Length; i++) row[Columns[i]] = values[i];
        try
        {
            _json.WriteLine(JsonSerializer.Serialize(row, JsonOptions));
            _csv.WriteLine(string.Join(',', values.Select(v => v is IFormattable f ? f.ToString(null, CultureInfo.InvariantCulture) : "")));
            _json.Flush();
            _csv.Flush();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TrainingException($"cannot write metrics in '{_folder}': {e.Message.Split('\n')[0]}", e);
        }
        Remember([r.Step, r.Epoch, r.Loss, r.LearningRate, r.ImagesPerSecond, r.SkippedSteps, r.ValAccuracy, r.ValNormEditDistance]);
    }

    static readonly JsonSerializerOptions JsonOptions = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    void Remember(double?[] values)
    {
        if (values.Length != Columns.Length || values[0] is not { } step) return;
        if (values[2] is { } loss) _loss.Add((step, loss));
        if (values[6] is { } accuracy) _accuracy.Add((step, accuracy));
    }

    /// <summary>Redraws metrics.png: the mean loss of each logged step (left axis) and the validation accuracy
    /// (right axis, percent). Written to a temp file and renamed, so a viewer never sees half a PNG.</summary>
    public void WritePlot(int width = 900, int height = 500)
    {
        UseInstalledFont();
        var plot = new ScottPlot.Plot();
        var loss = plot.Add.Scatter(_loss.Select(p => p.Step).ToArray(), _loss.Select(p => p.Loss).ToArray());
        loss.LegendText = "loss (mean per log line)";
        loss.MarkerSize = 0;
        var accuracy = plot.Add.Scatter(_accuracy.Select(p => p.Step).ToArray(), _accuracy.Select(p => 100 * p.Accuracy).ToArray());
        accuracy.LegendText = "validation accuracy %";
        accuracy.Axes.YAxis = plot.Axes.Right;
        accuracy.MarkerSize = 6;
        plot.Axes.Bottom.Label.Text = "step";
        plot.Axes.Left.Label.Text = "CTC loss";
        plot.Axes.Right.Label.Text = "validation accuracy (%)";
        plot.Axes.SetLimitsY(0, 100, plot.Axes.Right);
        plot.ShowLegend(ScottPlot.Alignment.UpperCenter);
        string path = Path.Combine(_folder, PlotFile), temp = path + ".tmp";
        try
        {
            File.WriteAllBytes(temp, plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png));
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(temp); } catch (IOException) { /* report the first failure */ }
            throw new TrainingException($"cannot write {PlotFile} in '{_folder}': {e.Message.Split('\n')[0]}", e);
        }
    }

    static bool _fontChosen;

    /// <summary>The bundled Linux Skia has no font manager, so ScottPlot would draw no text: give it an installed
    /// TrueType file, DejaVu Sans when there (none installed: the plot has lines but no labels).</summary>
    static void UseInstalledFont()
    {
        if (_fontChosen) return;
        _fontChosen = true;
        string? font = Synthetic.FontCatalog.SystemFontRoots()
            .SelectMany(root => Directory.EnumerateFiles(root, "*.ttf", SearchOption.AllDirectories))
            .OrderBy(f => Path.GetFileName(f) == "DejaVuSans.ttf" ? 0 : 1).ThenBy(f => f, StringComparer.Ordinal)
            .FirstOrDefault();
        if (font is null) return;
        ScottPlot.Fonts.AddFontFile("crnn-plot", font);
        ScottPlot.Fonts.AddFontFile("crnn-plot", font, bold: true); // axis labels are bold
        ScottPlot.Fonts.Default = "crnn-plot";
    }

    static long JsonStep(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            return doc.RootElement.GetProperty("step").GetInt64();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return long.MaxValue; // not a row of ours: dropped
        }
    }

    /// <summary>The step of a csv row; a row cut short (the process killed while appending it) is not a row.</summary>
    static long CsvStep(string line) =>
        line.Split(',') is { Length: var n } fields && n == Columns.Length && long.TryParse(fields[0], CultureInfo.InvariantCulture, out long step) ? step : long.MaxValue;

    static double? ParseOrNull(string field) => double.TryParse(field, CultureInfo.InvariantCulture, out double v) ? v : null;

    public void Dispose()
    {
        _json.Dispose();
        _csv.Dispose();
    }
}

/// <summary>Training cannot go on (diverged, metrics unwritable); the message is one line for the user.</summary>
public sealed class TrainingException(string message, Exception? inner = null) : Exception(message, inner);
