// Reads text from images with the Crnn.Gpu package: dotnet run -- MODEL_DIR IMAGE...
// e.g. dotnet run -- ../../models/en-number-mobile ../../models/samples/outwardly.png
using Crnn.Engine;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: ReadImages MODEL_DIR IMAGE...");
    return 2;
}
using var reader = TextRecognizer.Open(args[0], device: "auto");
Console.Error.WriteLine($"model: {reader.Config.Describe()} on {reader.DeviceName}");
var paths = args[1..];
var results = reader.ReadBatch(paths);
for (int i = 0; i < paths.Length; i++)
{
    var r = results[i];
    // Each character with the pixel column range of the image where the model read it.
    string where = string.Join(" ", r.Characters.Select(c => $"{c.Symbol}@{c.Left:F0}-{c.Right:F0}"));
    Console.WriteLine($"{paths[i]}\t{r.Text}\t{r.Confidence:F3}\t{where}");
}
return 0;
