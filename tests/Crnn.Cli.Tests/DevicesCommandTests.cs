using Xunit;

namespace Crnn.Cli.Tests;

public class DevicesCommandTests
{
    [Fact]
    public void ListsTheCpuAndTheSelection()
    {
        var output = new StringWriter();
        Assert.Equal(0, DevicesCommand.Run("cpu", output));
        var text = output.ToString();
        Assert.Contains("cpu", text);
        Assert.Contains("selected: cpu", text);
        Assert.Contains("threads/group", text);
    }

    [Fact]
    public void UnknownDeviceIsAUserErrorNotACrash()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var saved = Console.Error;
        Console.SetError(error);
        try { Assert.Equal(2, DevicesCommand.Run("tpu", output)); }
        finally { Console.SetError(saved); }
        Assert.StartsWith("error: unknown device 'tpu'", error.ToString());
    }

    [Fact]
    public void RootCommandKnowsTheDevicesVerb()
    {
        var result = Program.BuildRoot().Parse(["devices", "--device", "cpu"]);
        Assert.Empty(result.Errors);
    }
}
