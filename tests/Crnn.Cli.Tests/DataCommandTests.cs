using System.Text;
using System.Text.Json;
using Crnn.Engine.Data;
using LightningDB;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace Crnn.Cli.Tests;

/// <summary>
/// A tiny model trained once through the CLI on a label file and an LMDB together (both with bad entries),
/// shared by the predict and eval tests.
/// </summary>
public sealed class TrainedOnFiles : IDisposable
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("crnn-data-cli-").FullName;
    public string Images => Path.Combine(Folder, "images");
    public string Labels => Path.Combine(Folder, "labels.txt");
    public string Lmdb => Path.Combine(Folder, "lmdb");
    public string Run => Path.Combine(Folder, "run");
    /// <summary>Texts of the good images of the label file, by file name.</summary>
    public Dictionary<string, string> Truth { get; } = [];
    public (int Code, string Out, string Err) Training { get; }

    /// <summary>Upper case and '!' in the dictionary: --case auto keeps case, and the benchmark convention matters.</summary>
    public const string Symbols = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!";

    public TrainedOnFiles()
    {
        Directory.CreateDirectory(Images);
        string[] texts = ["Ab1", "HELLO!", "x", "go!", "Zz9", "Ok"];
        var lines = new List<string>();
        for (int i = 0; i < texts.Length; i++)
        {
            string name = $"w{i}.png";
            File.WriteAllBytes(Path.Combine(Images, name), Png(seed: i));
            Truth[name] = texts[i];
            lines.Add($"images/{name}\t{texts[i]}");
        }
        lines.Add("images/missing.png\tgone");   // a bad image: skipped in training, counted in eval
        lines.Add("images/w0.png\tno_such_symbol"); // '_' is not in the dictionary: skipped when read
        File.WriteAllLines(Labels, lines);
        File.WriteAllText(Path.Combine(Images, "notes.txt"), "not an image, not listed by predict");
        File.WriteAllBytes(Path.Combine(Images, "x-corrupt.png"), Encoding.ASCII.GetBytes("this is not a png"));
        WriteLmdb(Lmdb, [(Png(10), "lm1"), (Png(11), "LM2"), (Encoding.ASCII.GetBytes("corrupt"), "bad"), (Png(12), "lm3"), (Png(13), "lm4")]);
        File.WriteAllLines(Path.Combine(Folder, "dict.txt"), Symbols.Select(c => c.ToString()));

        Training = Cli.Run("train", "--train", Labels, "--train", Lmdb, "--val", Labels, "--dict", Path.Combine(Folder, "dict.txt"),
            "--steps", "3", "--batch-size", "4", "--val-every", "0", "--log-every", "1", "--device", "cpu", "--output", Run);
    }

    public static byte[] Png(int seed, int width = 48, int height = 16)
    {
        var rgb = new byte[width * height * 3];
        new Random(seed).NextBytes(rgb);
        using var image = SixLabors.ImageSharp.Image.LoadPixelData<Rgb24>(rgb, width, height);
        using var png = new MemoryStream();
        image.SaveAsPng(png);
        return png.ToArray();
    }

    /// <summary>The MJSynth/SynthText layout: num-samples, then image-%09d and label-%09d from 1.</summary>
    public static void WriteLmdb(string folder, IReadOnlyList<(byte[] Image, string Label)> samples)
    {
        Directory.CreateDirectory(folder);
        LmdbLibrary.Require();
        using var environment = new LightningEnvironment(folder, new EnvironmentConfiguration { MapSize = 16 << 20 });
        environment.Open();
        using var transaction = environment.BeginTransaction();
        using var database = transaction.OpenDatabase();
        void Put(string key, byte[] value) => transaction.Put(database, Encoding.ASCII.GetBytes(key), value).ThrowOnError();
        Put("num-samples", Encoding.ASCII.GetBytes(samples.Count.ToString()));
        for (int i = 0; i < samples.Count; i++)
        {
            Put($"image-{i + 1:D9}", samples[i].Image);
            Put($"label-{i + 1:D9}", Encoding.UTF8.GetBytes(samples[i].Label));
        }
        transaction.Commit().ThrowOnError();
    }

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}

public class DataCommandTests(TrainedOnFiles data) : IClassFixture<TrainedOnFiles>
{
    static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [Fact]
    public void TrainsOnALabelFileAndAnLmdbTogether()
    {
        var (code, log, err) = data.Training;
        Assert.True(code == 0, err);
        // 6 good + 1 missing image from the label file (1 line skipped), 4 good + 1 corrupt image from the LMDB
        Assert.Contains($"data: 12 samples from {data.Labels}, {data.Lmdb} (case: keep)", log);
        Assert.Contains("no_such_symbol", log);
        Assert.Contains("1 skipped (1 symbol not in the dictionary)", log);
        // 12 good samples need all 14 of the first epoch: both bad images are met, reported once each
        Assert.Single(Lines(log), l => l.StartsWith("skipped bad image") && l.Contains("missing.png"));
        Assert.Single(Lines(log), l => l.StartsWith("skipped bad image") && l.Contains("image-000000003"));
        Assert.Contains("bad images skipped: 2 in all", log);
        Assert.Contains("skipped bad validation image", log);
        Assert.Contains("validation: 6 images", log);
        using var model = JsonDocument.Parse(File.ReadAllText(Path.Combine(data.Run, "model.json")));
        Assert.Equal(3, model.RootElement.GetProperty("step").GetInt32());
        Assert.Equal(3, File.ReadAllLines(Path.Combine(data.Run, "metrics.jsonl")).Length);
    }

    [Fact]
    public void PredictsFoldersGlobsAndJsonLines()
    {
        var folder = Cli.Run("predict", "--model", data.Run, "--device", "cpu", data.Images);
        Assert.Equal(1, folder.Code); // one image could not be read
        var rows = Lines(folder.Out).Select(l => l.Split('\t')).ToList();
        Assert.Equal(data.Truth.Keys.Order(StringComparer.Ordinal).Select(n => Path.Combine(data.Images, n)), rows.Select(r => r[0]));
        Assert.All(rows, r => Assert.InRange(float.Parse(r[2]), 0f, 1f));
        Assert.Contains("x-corrupt.png", folder.Err);
        Assert.Contains("1 of 7 images could not be read", folder.Err);

        // A quoted pattern is expanded by crnn itself; JSON lines carry the same predictions.
        string pattern = Path.Combine(data.Images, "w[0-2]*.png");
        var json = Cli.Run("predict", "--model", data.Run, "--device", "cpu", "--json", pattern);
        Assert.Equal(0, json.Code);
        var objects = Lines(json.Out).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(["w0.png", "w1.png", "w2.png"], objects.Select(o => Path.GetFileName(o.GetProperty("path").GetString())));
        foreach (var o in objects)
        {
            var row = rows.Single(r => r[0] == o.GetProperty("path").GetString());
            Assert.Equal(row[1], o.GetProperty("text").GetString());
            Assert.Equal(float.Parse(row[2]), o.GetProperty("confidence").GetSingle(), 4);
        }

        Cli.AssertUserError(Cli.Run("predict", "--model", data.Run, "--device", "cpu", "--strict", data.Images), "x-corrupt.png");
        Cli.AssertUserError(Cli.Run("predict", "--model", data.Run, "--device", "cpu", Path.Combine(data.Images, "*.jpg")), "no files match");
    }

    /// <summary>The scores of predictions against truths, computed here independently in float64.</summary>
    static (double Accuracy, double NormEditDistance) Score(IEnumerable<(string Predicted, string Truth)> pairs, bool benchmark)
    {
        static string Reduce(string s) => new(s.Where(char.IsAsciiLetterOrDigit).Select(char.ToLowerInvariant).ToArray());
        static int Distance(string a, string b)
        {
            var d = new int[a.Length + 1, b.Length + 1];
            for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
            for (int j = 0; j <= b.Length; j++) d[0, j] = j;
            for (int i = 1; i <= a.Length; i++)
                for (int j = 1; j <= b.Length; j++)
                    d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            return d[a.Length, b.Length];
        }
        var list = pairs.Select(p => benchmark ? (Reduce(p.Predicted), Reduce(p.Truth)) : p).ToList();
        double accuracy = list.Count(p => p.Item1 == p.Item2) / (double)list.Count;
        double distance = list.Sum(p => Math.Max(p.Item1.Length, p.Item2.Length) is var n and > 0 ? Distance(p.Item1, p.Item2) / (double)n : 0);
        return (accuracy, 1 - distance / list.Count);
    }

    [Fact]
    public void EvalScoresEachDatasetAndTheBenchmarkConvention()
    {
        var predicted = Cli.Run("predict", "--model", data.Run, "--device", "cpu", "--json", Path.Combine(data.Images, "w*.png"));
        var text = Lines(predicted.Out).Select(l => JsonDocument.Parse(l).RootElement)
            .ToDictionary(o => Path.GetFileName(o.GetProperty("path").GetString()!), o => o.GetProperty("text").GetString()!);
        var pairs = data.Truth.Select(t => (text[t.Key], t.Value)).ToList();

        foreach (bool benchmark in new[] { false, true })
        {
            var args = new List<string> { "eval", "--model", data.Run, "--device", "cpu", "--data", data.Labels, "--data", data.Lmdb, "--json" };
            if (benchmark) args.Add("--benchmark-convention");
            var result = Cli.Run([.. args]);
            Assert.True(result.Code == 0, result.Err);
            var json = JsonDocument.Parse(result.Out).RootElement;
            Assert.Equal(benchmark, json.GetProperty("benchmark_convention").GetBoolean());
            // "no_such_symbol" is skipped as it is ('_' is not in the dictionary), and read as "nosuchsymbol" under
            // the benchmark convention
            int scored = benchmark ? 7 : 6;
            Assert.Equal(scored + 4, json.GetProperty("count").GetInt32());
            Assert.Equal(benchmark ? 2 : 3, json.GetProperty("skipped").GetInt32()); // (a label,) a missing image, a corrupt LMDB image
            var labels = json.GetProperty("datasets")[0];
            Assert.Equal(data.Labels, labels.GetProperty("path").GetString());
            Assert.Equal(scored, labels.GetProperty("count").GetInt32());
            Assert.Equal(benchmark ? 1 : 2, labels.GetProperty("skipped").GetInt32());
            var (accuracy, distance) = Score(benchmark ? [.. pairs, (text["w0.png"], "no_such_symbol")] : pairs, benchmark);
            Assert.Equal(accuracy, labels.GetProperty("accuracy").GetDouble(), 12);
            Assert.Equal(distance, labels.GetProperty("norm_edit_distance").GetDouble(), 12);
            var lmdb = json.GetProperty("datasets")[1];
            Assert.Equal(4, lmdb.GetProperty("count").GetInt32());
            Assert.Equal(1, lmdb.GetProperty("skipped").GetInt32());
            double total = (scored * labels.GetProperty("accuracy").GetDouble() + 4 * lmdb.GetProperty("accuracy").GetDouble()) / (scored + 4);
            Assert.Equal(total, json.GetProperty("accuracy").GetDouble(), 12);
        }

        // Truths that differ from the predictions only in case and punctuation: all wrong as they are, all right
        // under the benchmark convention.
        string derived = Path.Combine(data.Folder, "derived.txt");
        File.WriteAllLines(derived, text.Select(t => $"images/{t.Key}\t{t.Value.ToUpperInvariant()}!"));
        foreach (var (benchmark, expected) in new[] { (false, 0.0), (true, 1.0) })
        {
            string[] args = ["eval", "--model", data.Run, "--device", "cpu", "--data", derived, "--json"];
            var result = Cli.Run(benchmark ? [.. args, "--benchmark-convention"] : args);
            var json = JsonDocument.Parse(result.Out).RootElement;
            Assert.Equal(6, json.GetProperty("count").GetInt32());
            Assert.Equal(expected, json.GetProperty("accuracy").GetDouble());
        }

        var table = Cli.Run("eval", "--model", data.Run, "--device", "cpu", "--data", data.Labels, "--data", data.Lmdb, "--benchmark-convention");
        Assert.Equal(0, table.Code);
        var rows = Lines(table.Out);
        Assert.StartsWith("data", rows[0]);
        Assert.Contains("norm_edit_distance", rows[0]);
        Assert.StartsWith(data.Labels, rows[1]);
        Assert.StartsWith(data.Lmdb, rows[2]);
        Assert.Matches(@"^total\s+11\s+2\s+\d+\.\d\d %\s+\d\.\d{4}$", rows[3]);
        Assert.Contains("benchmark convention", rows[4]);
        Assert.Contains("missing.png", table.Err);
    }

    [Fact]
    public void BenchmarkConventionNormalisesLabelsBeforeTheDictionaryCheck()
    {
        // '/' and '.' are not in the model's dictionary: as they are, these labels are skipped; under the benchmark
        // convention they are read as "03092009" and "wwwsitecom" and scored. "!!" is in the dictionary but nothing
        // of it is left under the convention: skipped there.
        string[] truths = ["03/09/2009", "www.site.com", "Ok", "!!"];
        string labels = Path.Combine(data.Folder, "punctuated.txt");
        File.WriteAllLines(labels, truths.Select((t, i) => $"images/w{i}.png\t{t}"));
        string lmdb = Path.Combine(data.Folder, "punctuated-lmdb");
        TrainedOnFiles.WriteLmdb(lmdb, [.. truths.Select((t, i) => (TrainedOnFiles.Png(seed: i), t))]);

        var predicted = Cli.Run("predict", "--model", data.Run, "--device", "cpu", "--json", Path.Combine(data.Images, "w*.png"));
        var text = Lines(predicted.Out).Select(l => JsonDocument.Parse(l).RootElement)
            .ToDictionary(o => Path.GetFileName(o.GetProperty("path").GetString()!), o => o.GetProperty("text").GetString()!);

        foreach (string dataset in new[] { labels, lmdb })
        {
            string[] args = ["eval", "--model", data.Run, "--device", "cpu", "--data", dataset, "--json"];
            var plain = Cli.Run(args);
            Assert.True(plain.Code == 0, plain.Err);
            var json = JsonDocument.Parse(plain.Out).RootElement;
            Assert.Equal(2, json.GetProperty("count").GetInt32()); // "Ok", "!!"
            Assert.Equal(2, json.GetProperty("skipped").GetInt32());
            Assert.Contains("2 skipped (2 symbol not in the dictionary)", plain.Err);

            var benchmark = Cli.Run([.. args, "--benchmark-convention"]);
            Assert.True(benchmark.Code == 0, benchmark.Err);
            json = JsonDocument.Parse(benchmark.Out).RootElement;
            Assert.Equal(3, json.GetProperty("count").GetInt32());
            Assert.Equal(1, json.GetProperty("skipped").GetInt32());
            Assert.Contains("1 skipped (1 empty label)", benchmark.Err);
            Assert.DoesNotContain("not in the dictionary", benchmark.Err);
            // the LMDB holds the same images (same seeds), so the predictions are the same in both
            var (accuracy, distance) = Score(truths[..3].Select((t, i) => (text[$"w{i}.png"], t)), benchmark: true);
            Assert.Equal(accuracy, json.GetProperty("accuracy").GetDouble(), 12);
            Assert.Equal(distance, json.GetProperty("norm_edit_distance").GetDouble(), 12);
        }
    }

    [Fact]
    public void StrictAndBadDataAreOneLineErrors()
    {
        Cli.AssertUserError(Cli.Run("eval", "--model", data.Run, "--device", "cpu", "--data", data.Labels, "--strict"), "no_such_symbol");
        Cli.AssertUserError(Cli.Run("eval", "--model", data.Run, "--device", "cpu", "--data", data.Lmdb, "--strict"), "image-000000003");
        Cli.AssertUserError(Cli.Run("eval", "--model", data.Run, "--device", "cpu", "--data", Path.Combine(data.Folder, "nothing")), "dataset not found");
        string output = Path.Combine(data.Folder, "strict-run");
        Cli.AssertUserError(Cli.Run("train", "--train", data.Lmdb, "--strict", "--steps", "3", "--batch-size", "4", "--val-every", "0", "--device", "cpu", "--output", output),
            "image-000000003");
        string duplicate = Path.Combine(data.Folder, "dup.txt");
        File.WriteAllLines(duplicate, ["a", "b", "a"]);
        Cli.AssertUserError(Cli.Run("train", "--train", data.Labels, "--dict", duplicate, "--steps", "1", "--device", "cpu", "--output", output),
            "line 3: duplicate symbol 'a'");
        string empty = Path.Combine(data.Folder, "empty.txt");
        File.WriteAllText(empty, "");
        Cli.AssertUserError(Cli.Run("train", "--train", empty, "--steps", "1", "--device", "cpu", "--output", output), "no usable samples");
    }
}
