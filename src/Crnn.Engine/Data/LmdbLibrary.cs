using System.Reflection;
using System.Runtime.InteropServices;
using LightningDB;

namespace Crnn.Engine.Data;

/// <summary>
/// Which native LMDB LightningDB binds to. The public scene-text LMDBs (MJSynth, SynthText, the benchmark sets)
/// were written by Python's lmdb, i.e. in LMDB 0.9's on-disk format; LightningDB 0.23 bundles LMDB 1.0, whose
/// format is incompatible (and whose Linux build needs glibc 2.38). So the system's LMDB 0.9 library is
/// preferred where one is installed (Debian/Ubuntu: liblmdb0); otherwise the bundled library is used.
/// </summary>
public static class LmdbLibrary
{
    public const string InstallHint = "install LMDB 0.9 (Debian/Ubuntu: apt-get install liblmdb0)";

    static readonly string[] SystemNames = OperatingSystem.IsWindows() ? [] : OperatingSystem.IsMacOS()
        ? ["liblmdb.dylib", "/opt/homebrew/lib/liblmdb.dylib", "/usr/local/lib/liblmdb.dylib"]
        : ["liblmdb.so.0", "liblmdb.so"];

    static readonly Assembly LightningAssembly = typeof(LightningEnvironment).Assembly;

    /// <summary>Null when a library loads, else why none does.</summary>
    static readonly Lazy<string?> Problem = new(() =>
    {
        try { NativeLibrary.SetDllImportResolver(LightningAssembly, Resolve); }
        catch (InvalidOperationException) { } // a resolver is already set: keep it
        if (LoadSystem() != IntPtr.Zero) return null;
        try
        {
            NativeLibrary.Load("lmdb", LightningAssembly, null); // the bundled library, found as LightningDB would
            return null;
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            // the message lists every probed path; the reason is usually on a line of its own (e.g. "GLIBC_2.38 not found")
            var lines = e.Message.Split('\n');
            string reason = lines.FirstOrDefault(l => l.Contains("GLIBC") || l.Contains("wrong ELF")) ?? lines[0];
            return $"no usable LMDB library ({reason.Trim()}): {InstallHint}";
        }
    });

    /// <summary>Binds LightningDB to a library before its first use; throws a one-line error when none loads
    /// (a LightningEnvironment whose constructor fails crashes the process from its finalizer, so check first).</summary>
    public static void Require()
    {
        if (Problem.Value is { } problem) throw new InvalidDataException(problem);
    }

    /// <summary>"LMDB 0.9.24: (July 24, 2019)", or why no library loads.</summary>
    public static string Version
    {
        get
        {
            if (Problem.Value is { } problem) return problem;
            using var environment = new LightningEnvironment(Path.GetTempPath()); // a handle only: no file is touched
            return environment.Version.Version ?? "unknown LMDB";
        }
    }

    static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) =>
        name.Contains("lmdb", StringComparison.OrdinalIgnoreCase) ? LoadSystem() : IntPtr.Zero; // zero: default probing

    static IntPtr LoadSystem()
    {
        foreach (var candidate in SystemNames)
            if (NativeLibrary.TryLoad(candidate, out var handle)) return handle;
        return IntPtr.Zero;
    }
}
