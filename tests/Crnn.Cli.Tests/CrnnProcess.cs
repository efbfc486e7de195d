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
        string dll = Path.Combine(AppContext.BaseDirectory, "crnn.dll");
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet", $"\"{dll}\" {arguments}")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
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
