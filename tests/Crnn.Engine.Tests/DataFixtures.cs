using System.Text;
using Crnn.Engine.Data;
using LightningDB;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Crnn.Engine.Tests;

/// <summary>Hand-made test images and LMDB files, written the way the public datasets are.</summary>
static class DataFixtures
{
    /// <summary>A w×h image of seeded random pixels: its raw RGB bytes and the PNG encoding of them.</summary>
    public static (byte[] Rgb, byte[] Png) Image(int seed, int width = 40, int height = 16)
    {
        var rgb = new byte[width * height * 3];
        new Random(seed).NextBytes(rgb);
        using var image = SixLabors.ImageSharp.Image.LoadPixelData<Rgb24>(rgb, width, height);
        using var png = new MemoryStream();
        image.SaveAsPng(png);
        return (rgb, png.ToArray());
    }

    /// <summary>The expected network input of raw pixels (Preprocess has its own tests against hand values).</summary>
    public static float[] Expected(byte[] rgb, int width = 40, int height = 16)
    {
        var chw = new float[3 * 32 * 100];
        Preprocess.ResizeNormalize(rgb, width, height, chw);
        return chw;
    }

    /// <summary>
    /// Writes an LMDB in the MJSynth/SynthText layout: num-samples, image-%09d and label-%09d from 1. A null
    /// image or label leaves that key out; labels are given as bytes so a test can write invalid UTF-8.
    /// A negative <paramref name="numSamples"/> leaves the num-samples key out.
    /// </summary>
    public static void WriteLmdb(string folder, IReadOnlyList<(byte[]? Image, byte[]? Label)> samples, int? numSamples = null)
    {
        Directory.CreateDirectory(folder);
        LmdbLibrary.Require(); // the library the datasets are read with
        using var environment = new LightningEnvironment(folder, new EnvironmentConfiguration { MapSize = 16 << 20 });
        environment.Open();
        using var transaction = environment.BeginTransaction();
        using var database = transaction.OpenDatabase();
        if (numSamples is not < 0) Put(transaction, database, "num-samples", Encoding.ASCII.GetBytes((numSamples ?? samples.Count).ToString()));
        for (int i = 0; i < samples.Count; i++)
        {
            if (samples[i].Image is { } image) Put(transaction, database, $"image-{i + 1:D9}", image);
            if (samples[i].Label is { } label) Put(transaction, database, $"label-{i + 1:D9}", label);
        }
        transaction.Commit().ThrowOnError();
    }

    static void Put(LightningTransaction transaction, LightningDatabase database, string key, byte[] value) =>
        transaction.Put(database, Encoding.ASCII.GetBytes(key), value).ThrowOnError();
}
