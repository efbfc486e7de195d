using System.Text;

namespace Crnn.Engine;

/// <summary>
/// The symbols the model can read. Class 0 is the CTC blank; symbol i is class i + 1, so a dictionary of N
/// symbols gives N + 1 classes. Symbols are single Unicode code points, as in PaddleOCR, whose encoder walks a
/// label one Python character (code point) at a time.
/// </summary>
public sealed class CharDictionary
{
    public const string DefaultSymbols = "0123456789abcdefghijklmnopqrstuvwxyz";
    public const int Blank = 0;

    readonly string[] _symbols;
    readonly Dictionary<Rune, int> _classOf = [];

    /// <summary>The seed model's dictionary: 0-9a-z, 37 classes with the blank.</summary>
    public static CharDictionary Default { get; } = FromSymbols(DefaultSymbols.Select(c => c.ToString()));

    /// <summary>Symbols in class order (class = index + 1).</summary>
    public IReadOnlyList<string> Symbols => _symbols;

    /// <summary>Number of model outputs: every symbol plus the blank.</summary>
    public int Classes => _symbols.Length + 1;

    CharDictionary(string[] symbols, Func<int, string> describe, string? name = null)
    {
        if (symbols.Length == 0) throw new FormatException($"{name ?? "the dictionary"} has no symbols");
        _symbols = symbols;
        for (int i = 0; i < symbols.Length; i++)
        {
            var symbol = symbols[i];
            // PaddleOCR turns a blank line into a class of its own that no label can use; rather than carry a
            // dead class (or drop the line and shift every later class id away from PaddleOCR's), say so.
            if (symbol.Length == 0)
                throw new FormatException($"{describe(i)} is blank: delete it (PaddleOCR would give it a class that no label can use; a line holding one space is the space symbol)");
            if (!Rune.TryGetRuneAt(symbol, 0, out var rune) || rune.Utf16SequenceLength != symbol.Length)
                throw new FormatException($"{describe(i)}: a symbol must be exactly one character, got '{symbol}' ({symbol.Length} UTF-16 units)");
            // PaddleOCR's use_space_char appends " " even to a file that has one (its en_dict.txt ends with a
            // space line): both classes decode to a space, and labels encode to the last, as Paddle's dict does.
            bool paddleSpace = symbol == " " && i == symbols.Length - 1;
            if (_classOf.TryGetValue(rune, out int earlier) && !paddleSpace)
                throw new FormatException($"{describe(i)}: duplicate symbol '{symbol}' (already {describe(earlier - 1)})");
            _classOf[rune] = i + 1;
            if (Rune.IsUpper(rune)) HasUpperCaseLetters = true;
        }
    }

    /// <summary>Whether any symbol is an upper-case letter: if none is, mixed-case labels are lower-cased
    /// (see <see cref="Data.LabelCase.Auto"/>).</summary>
    public bool HasUpperCaseLetters { get; }

    /// <summary>A dictionary from a list of symbols; useSpaceChar appends " " as PaddleOCR's use_space_char does.</summary>
    public static CharDictionary FromSymbols(IEnumerable<string> symbols, bool useSpaceChar = false)
    {
        var list = symbols.ToList();
        if (useSpaceChar) list.Add(" ");
        int given = list.Count - (useSpaceChar ? 1 : 0);
        return new CharDictionary([.. list], i => i < given ? $"symbol {i + 1}" : "use_space_char's \" \"");
    }

    /// <summary>
    /// Reads a PaddleOCR dictionary file: UTF-8, one symbol per line (a line holding one space is the space).
    /// An empty file, a blank line, a line of several characters, a duplicate and invalid UTF-8 are errors naming the line.
    /// </summary>
    public static CharDictionary Load(string path, bool useSpaceChar = false)
    {
        string[] lines;
        try { lines = File.ReadAllLines(path, StrictUtf8); } // strips the BOM and both \n and \r\n endings
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new FileNotFoundException($"cannot read dictionary '{path}': {e.Message}", path, e);
        }
        catch (DecoderFallbackException e)
        {
            throw new FormatException($"dictionary '{path}' is not valid UTF-8 ({e.Message})", e);
        }
        if (lines.Length == 0) throw new FormatException($"dictionary '{path}' is empty");
        if (useSpaceChar) lines = [.. lines, " "];
        int given = lines.Length - (useSpaceChar ? 1 : 0);
        return new CharDictionary(lines, i => i < given ? $"{path} line {i + 1}" : "use_space_char's \" \"", path);
    }

    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Class id of one symbol, or -1 if the dictionary does not have it.</summary>
    public int ClassOf(Rune symbol) => _classOf.TryGetValue(symbol, out int id) ? id : -1;

    /// <summary>Class ids of a label, or false with the first unknown symbol named in error.</summary>
    public bool TryEncode(string text, out int[] ids, out string? error)
    {
        var result = new List<int>(text.Length);
        int position = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            int id = ClassOf(rune);
            if (id < 0)
            {
                ids = [];
                error = $"symbol '{rune}' (U+{rune.Value:X4}) at position {position} of \"{text}\" is not in the dictionary";
                return false;
            }
            result.Add(id);
            position++;
        }
        ids = [.. result];
        error = null;
        return true;
    }

    /// <summary>Class ids of a label; throws naming the first unknown symbol.</summary>
    public int[] Encode(string text) =>
        TryEncode(text, out var ids, out var error) ? ids : throw new ArgumentException(error, nameof(text));

    /// <summary>The text of class ids. Blanks carry no symbol and are skipped; collapsing repeats is the CTC
    /// decoder's job, not this one's.</summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var text = new StringBuilder(ids.Length);
        foreach (int id in ids)
        {
            if (id == Blank) continue;
            if (id < 0 || id >= Classes)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"class id {id} is outside 0..{Classes - 1}");
            text.Append(_symbols[id - 1]);
        }
        return text.ToString();
    }
}
