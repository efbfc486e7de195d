using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Crnn.Cli.Tests;

/// <summary>The .NET tool package Crnn.Gpu.Tool as a user gets it: packed from src/Crnn.Cli (or taken from
/// artifacts/packages when tools/pack.sh already made this version), installed with <c>dotnet tool install
/// --tool-path</c> from that folder, then its <c>crnn</c> run: <c>--version</c> and a prediction with the ready
/// model. Needs a checkout (Crnn.Gpu.sln above the test folder) and the .NET SDK: the GPU kit has neither, and
/// there it is skipped, saying so.</summary>
public class ToolPackageTests(ITestOutputHelper output) : IDisposable
{
    const string PackageId = "Crnn.Gpu.Tool";
    static readonly string Base = AppContext.BaseDirectory;

    readonly string _folder = Directory.CreateTempSubdirectory("crnn-tool-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [CheckoutFact]
    public void PackedToolInstallsAndPredicts()
    {
        string root = RepositoryRoot();
        string version = Version(root);
        string dotnet = DotnetHost();

        // The package: tools/pack.sh's when it holds this version, else a fresh pack.
        string packages = Path.Combine(root, "artifacts", "packages");
        if (!File.Exists(Path.Combine(packages, $"{PackageId}.{version}.nupkg")))
        {
            packages = Path.Combine(_folder, "packages");
            // No MSBuild node or build server left behind holding the output pipes open.
            var pack = Run(dotnet, ["pack", Path.Combine(root, "src", "Crnn.Cli"), "-c", "Release", "-o", packages], root, TimeSpan.FromMinutes(10),
                ("MSBUILDDISABLENODEREUSE", "1"), ("DOTNET_CLI_DO_NOT_USE_MSBUILD_SERVER", "1"));
            AssertSucceeded("dotnet pack src/Crnn.Cli", pack);
        }
        output.WriteLine($"package: {Path.Combine(packages, $"{PackageId}.{version}.nupkg")}");

        // An empty NuGet cache of its own, so the install takes this package and not one of the same version
        // cached earlier; the tool package carries its dependencies, so nothing else needs downloading.
        string tools = Path.Combine(_folder, "tools");
        var install = Run(dotnet,
            ["tool", "install", PackageId, "--tool-path", tools, "--add-source", packages, "--version", version, "--ignore-failed-sources"],
            _folder, TimeSpan.FromMinutes(5), ("NUGET_PACKAGES", Path.Combine(_folder, "nuget-cache")));
        AssertSucceeded("dotnet tool install", install);

        string crnn = Path.Combine(tools, OperatingSystem.IsWindows() ? "crnn.exe" : "crnn");
        Assert.True(File.Exists(crnn), $"dotnet tool install put no {crnn}:\n{install.Out}");
        // The tool's launcher finds the runtime through DOTNET_ROOT: the one running these tests.
        var runtime = ("DOTNET_ROOT", Environment.GetEnvironmentVariable("DOTNET_ROOT") ?? Path.GetDirectoryName(dotnet));

        var versionRun = Run(crnn, ["--version"], _folder, TimeSpan.FromMinutes(1), runtime);
        AssertSucceeded("crnn --version", versionRun);
        Assert.Equal(version, versionRun.Out.Trim());

        string model = Path.Combine(Base, "models", "en-number-mobile");
        string image = Path.Combine(Base, "models", "samples", "outwardly.png");
        var predict = Run(crnn, ["predict", "--model", model, image], _folder, TimeSpan.FromMinutes(5), runtime);
        AssertSucceeded("crnn predict", predict);
        output.WriteLine(predict.Out);
        var fields = predict.Out.TrimEnd('\n').Split('\t');
        Assert.True(fields.Length == 3, $"crnn predict printed not one 'path<TAB>text<TAB>confidence' line:\n{predict.Out}");
        Assert.Equal("outwardly", fields[1]);
    }

    /// <summary>The folder holding Crnn.Gpu.sln, from the test's own folder upwards; a clear failure without one.</summary>
    static string RepositoryRoot() => CheckoutFactAttribute.Root ?? throw new InvalidOperationException("no checkout");

    /// <summary>The one version of both packages: Directory.Build.props' &lt;Version&gt;.</summary>
    static string Version(string root)
    {
        string props = File.ReadAllText(Path.Combine(root, "Directory.Build.props"));
        var match = Regex.Match(props, @"<Version>\s*([^<\s]+)\s*</Version>");
        Assert.True(match.Success, "Directory.Build.props has no <Version>");
        return match.Groups[1].Value;
    }

    /// <summary>The dotnet host running the tests (dotnet test sets DOTNET_HOST_PATH), else the one on PATH.</summary>
    static string DotnetHost()
    {
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (host is { Length: > 0 } && File.Exists(host)) return host;
        string name = OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return Path.GetFullPath(new FileInfo(candidate).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? candidate);
        }
        Assert.Fail("the tool-package test needs the .NET SDK: no dotnet host (DOTNET_HOST_PATH unset, none on PATH)");
        return "";
    }

    record struct Result(int Code, string Out, string Err);

    /// <summary>Runs a process to its end, or kills it (and its children) after <paramref name="timeout"/> and fails.</summary>
    static Result Run(string file, string[] args, string workingDirectory, TimeSpan timeout, params (string Name, string? Value)[] environment)
    {
        var info = new ProcessStartInfo(file)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (string arg in args) info.ArgumentList.Add(arg);
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        foreach (var (name, value) in environment) info.Environment[name] = value;

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"{Path.GetFileName(file)} {string.Join(' ', args)} ran past {timeout.TotalMinutes:F0} min:\n" +
                $"stdout:\n{stdout.Result}\nstderr:\n{stderr.Result}");
        }
        process.WaitForExit(); // the redirected streams to their end
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }

    static void AssertSucceeded(string what, Result result) =>
        Assert.True(result.Code == 0, $"{what} exited with {result.Code}:\nstderr:\n{result.Err}\nstdout:\n{result.Out}");
}

/// <summary>A test that packs and installs from the repository: it runs in a checkout (tools/test.sh, CI) and is
/// skipped, saying why, in the self-contained GPU kit, which has neither the sources nor the .NET SDK.</summary>
public sealed class CheckoutFactAttribute : FactAttribute
{
    /// <summary>The checkout holding the test binaries (the folder with Crnn.Gpu.sln), or null.</summary>
    public static string? Root
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Crnn.Gpu.sln"))) return dir.FullName;
            return null;
        }
    }

    public CheckoutFactAttribute()
    {
        if (Root is null) Skip = "needs a checkout and the .NET SDK to pack and install the tool (the GPU kit has neither)";
    }
}
