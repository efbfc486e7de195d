using System.Reflection;
using System.Text;
using Crnn.Engine.Data;

namespace Crnn.Engine.Synthetic;

/// <summary>
/// The texts of synthetic samples: English words from the embedded list (lower case, or Capitalized/UPPER when
/// the dictionary has those letters; a quarter with punctuation when it has that) mixed with random strings (any
/// symbols, digit runs, letters with digits).
/// Every text is encodable by the dictionary, never starts or ends with a space, and aligns in the model's
/// time steps.
/// </summary>
public sealed class TextSampler
{
    public const int MaxRandomLength = 10;

    readonly CharDictionary _dictionary;
    readonly double _wordRatio;
    readonly int _maxSteps;
    readonly string[] _visible, _all, _letters, _digits;
    readonly string[] _words; // list words with at least one encodable case form
    readonly bool _space, _punctuation;

    /// <summary>The embedded word list: ~36 k lower-case English words of 1–12 letters a–z from Debian's wamerican
    /// (/usr/share/dict/words, SCOWL size 50): every base form, plus every fourth inflected form (-s, -ed, -ing,
    /// -er, -est, -ly, -ness of a listed word), so common words are all there without the list being mostly plurals.</summary>
    public static IReadOnlyList<string> WordList { get; } = LoadWordList();

    public TextSampler(CharDictionary dictionary, double wordRatio, int steps = 25)
    {
        _dictionary = dictionary;
        _wordRatio = wordRatio;
        _maxSteps = steps;
        _all = [.. dictionary.Symbols];
        _visible = [.. _all.Where(s => !string.IsNullOrWhiteSpace(s))];
        if (_visible.Length == 0) throw new ArgumentException("the dictionary has only whitespace symbols; nothing visible to render");
        _letters = [.. _visible.Where(s => char.IsLetter(s, 0))];
        _digits = [.. _visible.Where(s => char.IsDigit(s, 0))];
        _space = _all.Contains(" ");
        _punctuation = _visible.Any(s => char.IsPunctuation(s, 0) || char.IsSymbol(s, 0));
        _words = [.. WordList.Where(w => CaseForms(w).Any(Encodable))];
    }

    /// <summary>How many list words this dictionary can spell (in some case form).</summary>
    public int UsableWords => _words.Length;

    static string[] LoadWordList()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Crnn.Engine.Synthetic.words.txt")
            ?? throw new InvalidOperationException("embedded word list missing from the assembly");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    static string[] CaseForms(string word) => [word, char.ToUpperInvariant(word[0]) + word[1..], word.ToUpperInvariant()];

    bool Encodable(string text) => _dictionary.TryEncode(text, out var ids, out _) && LabelFile.Alignable(ids, _maxSteps);

    /// <summary>A text drawn from <paramref name="rng"/> only, so a sample stays a function of its seed.</summary>
    public string Next(Random rng)
    {
        bool word = _words.Length > 0 && rng.NextDouble() < _wordRatio;
        for (int attempt = 0; attempt < 8; attempt++)
        {
            string text = word ? WordText(rng) : RandomText(rng);
            if (Encodable(text)) return text;
        }
        return _visible[rng.Next(_visible.Length)]; // always encodable
    }

    string WordText(Random rng)
    {
        string text = Word(rng);
        if (_space && rng.NextDouble() < 0.3) text += " " + Word(rng);
        if (_punctuation && rng.NextDouble() < 0.25)
        {
            string decorated = Punctuated(text, rng);
            if (Encodable(decorated)) text = decorated;
        }
        return text;
    }

    /// <summary>A list word, lower case 60 %, Capitalized 25 %, UPPER 15 % — the first encodable form when the
    /// drawn one is not.</summary>
    string Word(Random rng)
    {
        var forms = CaseForms(_words[rng.Next(_words.Length)]);
        double u = rng.NextDouble();
        int preferred = u < 0.6 ? 0 : u < 0.85 ? 1 : 2;
        return Encodable(forms[preferred]) ? forms[preferred] : forms.First(Encodable);
    }

    /// <summary>Punctuation as it appears around words on signs and in print (kept only when the dictionary can
    /// spell it): a trailing mark, brackets or quotes, a possessive, a hyphenated pair, a price, a number with
    /// separators, a percentage.</summary>
    string Punctuated(string word, Random rng) => rng.Next(8) switch
    {
        0 => word + ".,:;!?"[rng.Next(6)],
        1 => "(" + word + ")",
        2 => "\"" + word + "\"",
        3 => word + "'s",
        4 => word + "-" + Word(rng),
        5 => "$" + rng.Next(1, 1000) + "." + rng.Next(100).ToString("00"),
        6 => rng.Next(1, 100) + "," + rng.Next(1000).ToString("000"),
        _ => rng.Next(1, 101) + "%",
    };

    string RandomText(Random rng)
    {
        int kind = rng.Next(4);
        if (kind == 1 && _digits.Length > 0) return Run(rng, _digits, rng.Next(1, 9));
        if (kind == 2 && _digits.Length > 0 && _letters.Length > 0)
        {
            string letters = Run(rng, _letters, rng.Next(1, 6)), digits = Run(rng, _digits, rng.Next(1, 5));
            return rng.Next(2) == 0 ? letters + digits : digits + letters;
        }
        // any symbols; a space only inside, where it is visible as a gap
        int length = rng.Next(1, MaxRandomLength + 1);
        var text = new StringBuilder();
        for (int i = 0; i < length; i++)
            text.Append(i == 0 || i == length - 1 ? _visible[rng.Next(_visible.Length)] : _all[rng.Next(_all.Length)]);
        return text.ToString();
    }

    static string Run(Random rng, string[] symbols, int length)
    {
        var text = new StringBuilder(length);
        for (int i = 0; i < length; i++) text.Append(symbols[rng.Next(symbols.Length)]);
        return text.ToString();
    }
}
