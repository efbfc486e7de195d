using System.Diagnostics;
using System.Reflection;
using Xunit;
using Xunit.Abstractions;

namespace Crnn.TestRunner;

public enum Outcome { Passed, Failed, Skipped }

public sealed record TestResult(TestCase Test, Outcome Outcome, TimeSpan Duration, string? Message, string Output = "");

/// <summary>The ITestOutputHelper handed to a test: lines kept and shown with a failure (or with --verbose).</summary>
public sealed class CapturedOutput : ITestOutputHelper
{
    readonly System.Text.StringBuilder _text = new();
    public string Text => _text.ToString();
    public void WriteLine(string message) => _text.AppendLine(message);
    public void WriteLine(string format, params object[] args) => _text.AppendLine(string.Format(format, args));
}

/// <summary>
/// IClassFixture&lt;T&gt; instances: made once per test class on first use, disposed when the class is done,
/// as xunit does. (Collection fixtures are not supported: no test here uses them.)
/// </summary>
public sealed class ClassFixtures : IDisposable
{
    readonly Dictionary<Type, object> _made = [];

    public object Get(Type testClass, Type fixture)
    {
        if (!testClass.GetInterfaces().Contains(typeof(IClassFixture<>).MakeGenericType(fixture)))
            throw new InvalidOperationException($"{testClass.FullName}: constructor parameter {fixture.Name} is neither ITestOutputHelper nor a class fixture");
        if (!_made.TryGetValue(fixture, out var value)) _made[fixture] = value = Activator.CreateInstance(fixture)!;
        return value;
    }

    public void Dispose()
    {
        foreach (var value in _made.Values) (value as IDisposable)?.Dispose();
        _made.Clear();
    }
}

/// <summary>
/// Runs one test as xunit does: a new instance of the class per test (none for a static method),
/// IAsyncLifetime initialized and disposed around it, IDisposable disposed after it, Task results awaited.
/// Any exception from construction, the test or disposal fails the test.
/// </summary>
public static class TestExecution
{
    public static TestResult Run(TestCase test, ClassFixtures fixtures)
    {
        if (test.Skip != null) return new TestResult(test, Outcome.Skipped, TimeSpan.Zero, test.Skip);
        if (test.Error != null) return new TestResult(test, Outcome.Failed, TimeSpan.Zero, test.Error);

        var clock = Stopwatch.StartNew();
        var errors = new List<Exception>();
        var output = new CapturedOutput();
        object? instance = null;
        try
        {
            var arguments = BindArguments(test.Method, test.Arguments);
            if (!test.Method.IsStatic) instance = Construct(test.Class, output, fixtures);
            if (instance is IAsyncLifetime lifetime) lifetime.InitializeAsync().GetAwaiter().GetResult();
            Await(test.Method.Invoke(instance, arguments));
        }
        catch (Exception e) { errors.Add(Unwrap(e)); }
        finally
        {
            try
            {
                if (instance is IAsyncLifetime lifetime) lifetime.DisposeAsync().GetAwaiter().GetResult();
                if (instance is IDisposable disposable) disposable.Dispose();
            }
            catch (Exception e) { errors.Add(Unwrap(e)); }
        }
        return errors.Count == 0
            ? new TestResult(test, Outcome.Passed, clock.Elapsed, null, output.Text)
            : new TestResult(test, Outcome.Failed, clock.Elapsed, string.Join("\n", errors.Select(Describe)), output.Text);
    }

    /// <summary>xunit's rule: one public constructor; it may take the test's ITestOutputHelper and class fixtures.</summary>
    static object Construct(Type type, CapturedOutput output, ClassFixtures fixtures)
    {
        var constructors = type.GetConstructors();
        if (constructors.Length != 1) throw new InvalidOperationException($"{type.FullName} must have exactly one public constructor");
        var arguments = constructors[0].GetParameters()
            .Select(p => p.ParameterType == typeof(ITestOutputHelper) ? output : fixtures.Get(type, p.ParameterType))
            .ToArray();
        return constructors[0].Invoke(arguments);
    }

    /// <summary>Pads missing optional parameters with their defaults and converts numbers to the parameter type.</summary>
    static object?[] BindArguments(MethodInfo method, object?[] row)
    {
        var parameters = method.GetParameters();
        if (row.Length > parameters.Length || parameters.Skip(row.Length).Any(p => !p.IsOptional))
            throw new InvalidOperationException(
                $"the data row has {row.Length} value(s) for the {parameters.Length} parameter(s) of {method.Name}");
        return [.. parameters.Select((p, i) => i < row.Length ? Convert(row[i], p.ParameterType) : p.DefaultValue)];
    }

    static object? Convert(object? value, Type type)
    {
        if (value == null || type.IsInstanceOfType(value)) return value;
        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (target.IsEnum) return Enum.ToObject(target, value);
        return value is IConvertible ? System.Convert.ChangeType(value, target, System.Globalization.CultureInfo.InvariantCulture) : value;
    }

    static void Await(object? result)
    {
        if (result is Task task) task.GetAwaiter().GetResult();
        else if (result is ValueTask valueTask) valueTask.GetAwaiter().GetResult();
    }

    static Exception Unwrap(Exception e)
    {
        while (e is TargetInvocationException { InnerException: { } inner }) e = inner;
        return e;
    }

    /// <summary>Type, message and the stack frames of the test's own code (not the reflection plumbing).</summary>
    static string Describe(Exception e)
    {
        var frames = (e.StackTrace ?? "").Split('\n')
            .Where(f => !f.Contains("System.Reflection.") && !f.Contains("System.RuntimeMethodHandle") && !f.Contains("Crnn.TestRunner."))
            .Take(8);
        return $"{e.GetType().FullName}: {e.Message}\n{string.Join("\n", frames).TrimEnd()}";
    }
}
