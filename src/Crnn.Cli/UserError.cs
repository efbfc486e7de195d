using Crnn.Engine;
using Crnn.Engine.Training;
using Crnn.Kernels;

namespace Crnn.Cli;

/// <summary>Turns the errors a user can cause (bad options, missing or corrupt files, no such device)
/// into one line on stderr and exit code 2; anything else is a bug and keeps its stack trace. Failures of a run
/// that the user can act on (device memory, unwritable or full disk, diverged training) are reported the same way.</summary>
public static class UserError
{
    public static int Guard(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (e is ArgumentException or FileNotFoundException or DirectoryNotFoundException
                                      or InvalidDataException or FormatException or CheckpointException or DeviceException
                                      or UnauthorizedAccessException or TrainingException)
        {
            Console.Error.WriteLine($"error: {e.Message.Split('\n')[0]}");
            return 2;
        }
    }
}
