using System.Diagnostics;
using Xunit;

namespace Crnn.Cli.Tests;

/// <summary>A real crnn process: the one built next to this test assembly (the Cli project is a reference, so
/// its crnn.dll is copied here), with stdout read line by line.</summary>
public sealed class CrnnProcess : IDisposable
{
    readonly Process _process;
    public List<string> Lines { get; } = [];

    public CrnnProcess(string arguments)
    {
        // Under the GPU kit's runner (no dotnet there) the runner itself is the crnn command: `crnn-kit crnn ARGS`.
        string dll = Path.Combine(AppContext.BaseDirectory, "crnn.dll");
        var info = Path.GetFileName(Environment.ProcessPath) == "crnn-kit"
            ? new ProcessStartInfo(Environment.ProcessPath!, $"crnn {arguments}")
            : new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet", $"\"{dll}\" {arguments}");
        info.RedirectStandardOutput = info.RedirectStandardError = true;
        info.UseShellExecute = false;
        _process = Process.Start(info) ?? throw new InvalidOperationException("cannot start crnn");
    }

    public int Id => _process.Id;

    /// <summary>Reads stdout until a line starts with <paramref name="prefix"/>.</summary>
    public void ReadUntil(string prefix)
    {
        while (_process.StandardOutput.ReadLine() is { } line)
        {
            Lines.Add(line);
            if (line.StartsWith(prefix)) return;
        }
        Assert.Fail($"crnn ended before printing '{prefix}...':\n{string.Join('\n', Lines)}\n{_process.StandardError.ReadToEnd()}");
    }

    /// <summary>Waits for the end; returns the exit code and stderr (stdout's rest goes to <see cref="Lines"/>).</summary>
    public (int Code, string Errors) Finish()
    {
        var errors = _process.StandardError.ReadToEndAsync();
        Lines.AddRange(_process.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        _process.WaitForExit();
        return (_process.ExitCode, errors.Result);
    }

    /// <summary>SIGKILL: the process ends at once, wherever it is (mid-step, mid-save).</summary>
    public void KillHard()
    {
        _process.Kill();
        _process.WaitForExit();
    }

    public void Dispose()
    {
        if (!_process.HasExited) KillHard();
        _process.Dispose();
    }
}
