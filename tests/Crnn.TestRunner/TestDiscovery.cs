using System.Globalization;
using System.Reflection;
using Xunit;
using Xunit.Sdk;

namespace Crnn.TestRunner;

/// <summary>
/// One runnable test: a [Fact], or one data row of a [Theory]. <see cref="Error"/> is set when the test
/// cannot run at all (its data could not be read); it then counts as a failure, as in xunit.
/// </summary>
public sealed record TestCase(Type Class, MethodInfo Method, object?[] Arguments, string DisplayName, string? Skip, string? Error = null);

/// <summary>
/// Finds tests the way xunit 2 does for the attributes this project uses: public non-abstract (or static)
/// classes, public methods with [Fact] or [Theory]; a theory gives one test per row of each data attribute
/// ([InlineData], [MemberData] with or without MemberType, or any other DataAttribute), read through the
/// attribute's own GetData so member lookup matches xunit's.
/// </summary>
public static class TestDiscovery
{
    public static IEnumerable<TestCase> Discover(Assembly assembly) =>
        assembly.GetExportedTypes()
            .Where(t => (!t.IsAbstract || t.IsSealed) && !t.ContainsGenericParameters)
            .OrderBy(t => t.FullName, StringComparer.Ordinal)
            .SelectMany(DiscoverClass);

    static IEnumerable<TestCase> DiscoverClass(Type type) =>
        type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.FlattenHierarchy)
            .Where(m => m.GetCustomAttribute<FactAttribute>() != null)
            .OrderBy(m => m.MetadataToken)
            .SelectMany(m => DiscoverMethod(type, m));

    static IEnumerable<TestCase> DiscoverMethod(Type type, MethodInfo method)
    {
        var fact = method.GetCustomAttribute<FactAttribute>()!;
        string name = $"{type.FullName}.{method.Name}";
        // A skipped theory is one skipped test, its rows are not enumerated (xunit does the same).
        if (fact is not TheoryAttribute || fact.Skip != null)
        {
            yield return new TestCase(type, method, [], name, fact.Skip);
            yield break;
        }

        int rows = 0;
        foreach (var data in method.GetCustomAttributes<DataAttribute>())
        {
            var (dataRows, error) = ReadData(data, method);
            if (error != null)
            {
                rows++;
                yield return new TestCase(type, method, [], name, null, $"cannot read {data.GetType().Name}: {error}");
            }
            foreach (var row in dataRows)
            {
                rows++;
                yield return new TestCase(type, method, row, $"{name}({FormatArguments(method, row)})", data.Skip);
            }
        }
        if (rows == 0) yield return new TestCase(type, method, [], name, null, $"No data found for {name}");
    }

    static (List<object?[]> Rows, string? Error) ReadData(DataAttribute data, MethodInfo method)
    {
        try
        {
            var rows = data.GetData(method);
            return rows == null ? ([], "it returned no data") : ([.. rows.Select(r => (object?[])r)], null);
        }
        catch (Exception e)
        {
            return ([], (e is TargetInvocationException { InnerException: { } inner } ? inner : e).Message);
        }
    }

    /// <summary>xunit's display form: <c>name: value</c> pairs, strings quoted.</summary>
    static string FormatArguments(MethodInfo method, object?[] row)
    {
        var parameters = method.GetParameters();
        return string.Join(", ", row.Select((value, i) =>
            (i < parameters.Length ? parameters[i].Name + ": " : "") + Format(value)));
    }

    const int MaxStringLength = 50;

    static string Format(object? value) => value switch
    {
        null => "null",
        string s => s.Length > MaxStringLength ? $"\"{s[..MaxStringLength]}\"···" : $"\"{s}\"", // xunit shortens long strings
        char c => $"'{c}'",
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        Array a => "[" + string.Join(", ", a.Cast<object?>().Select(Format)) + "]",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
