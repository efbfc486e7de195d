using System.Text;
using Xunit;

namespace Crnn.Engine.Tests;

public class CharDictionaryTests
{
    [Fact]
    public void DefaultIsDigitsThenLowercaseAfterTheBlank()
    {
        var dict = CharDictionary.Default;
        Assert.Equal(37, dict.Classes);
        Assert.Equal(36, dict.Symbols.Count);
        Assert.Equal([1, 10, 11, 36], dict.Encode("09az"));
        Assert.Equal(37, new ModelConfig().Classes);
    }

    [Fact]
    public void DecodeSkipsBlanksAndInvertsEncode()
    {
        var dict = CharDictionary.Default;
        Assert.Equal("hello42", dict.Decode(dict.Encode("hello42")));
        Assert.Equal("ab", dict.Decode([0, 11, 0, 0, 12, 0]));
        Assert.Equal("", dict.Decode([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => dict.Decode([37]));
        Assert.Throws<ArgumentOutOfRangeException>(() => dict.Decode([-1]));
    }

    [Fact]
    public void UnknownSymbolIsNamed()
    {
        var dict = CharDictionary.Default;
        var e = Assert.Throws<ArgumentException>(() => dict.Encode("abC"));
        Assert.Contains("'C'", e.Message);
        Assert.Contains("position 2", e.Message);
        Assert.False(dict.TryEncode("a b", out var ids, out var error));
        Assert.Empty(ids);
        Assert.Contains("U+0020", error);
        Assert.True(dict.TryEncode("ab", out ids, out error));
        Assert.Equal([11, 12], ids);
        Assert.Null(error);
    }

    [Fact]
    public void LoadsPaddleFileWithSpaceCharAndCodePointsBeyondBmp()
    {
        string path = Path.GetTempFileName();
        try
        {
            // BOM, CRLF endings, a CJK symbol and one outside the BMP (a surrogate pair in UTF-16).
            File.WriteAllText(path, "a\r\n中\r\n😀\r\nb\n", new UTF8Encoding(encoderShouldEmitUTF8Identifier: true));
            var dict = CharDictionary.Load(path, useSpaceChar: true);
            Assert.Equal(["a", "中", "😀", "b", " "], dict.Symbols);
            Assert.Equal(6, dict.Classes);
            Assert.Equal([3, 5, 2, 4], dict.Encode("😀 中b"));
            Assert.Equal("😀 中b", dict.Decode(dict.Encode("😀 中b")));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void DuplicateOrMalformedLinesAreNamed()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "a\nb\nc\nb\n");
            var e = Assert.Throws<FormatException>(() => CharDictionary.Load(path));
            Assert.Contains("line 4", e.Message);
            Assert.Contains("line 2", e.Message);

            File.WriteAllText(path, "a\n\nb\n");
            Assert.Contains("line 2", Assert.Throws<FormatException>(() => CharDictionary.Load(path)).Message);

            File.WriteAllText(path, "a\nab\n");
            Assert.Contains("line 2", Assert.Throws<FormatException>(() => CharDictionary.Load(path)).Message);

            // PaddleOCR's en_dict.txt ends with a space line and its models add use_space_char's space too: two
            // classes that both read as a space; a label's space encodes to the last, as Paddle's dict does.
            File.WriteAllText(path, "a\n \n");
            var twoSpaces = CharDictionary.Load(path, useSpaceChar: true);
            Assert.Equal(4, twoSpaces.Classes);
            Assert.Equal("a  ", twoSpaces.Decode([1, 2, 3]));
            Assert.Equal([1, 3], twoSpaces.Encode("a "));
            File.WriteAllText(path, "a\n \n \nb\n"); // only the last symbol may repeat the space
            Assert.Contains("line 3", Assert.Throws<FormatException>(() => CharDictionary.Load(path)).Message);
        }
        finally { File.Delete(path); }
        Assert.Throws<FileNotFoundException>(() => CharDictionary.Load("/nonexistent/dict.txt"));
    }

    [Fact]
    public void EmptyFilesBlankLinesAndBadBytesAreErrorsNamingTheLine()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "");
            Assert.Contains("is empty", Assert.Throws<FormatException>(() => CharDictionary.Load(path)).Message);

            // PaddleOCR would make a class of each blank line (a trailing one too): an error that says so.
            File.WriteAllText(path, "a\nb\n\n");
            var blank = Assert.Throws<FormatException>(() => CharDictionary.Load(path)).Message;
            Assert.Contains($"{path} line 3 is blank", blank);
            Assert.Contains("PaddleOCR", blank);

            File.WriteAllText(path, "a\nb\nc\nb\n");
            var duplicate = Assert.Throws<FormatException>(() => CharDictionary.Load(path)).Message;
            Assert.Contains("line 4: duplicate symbol 'b'", duplicate);
            Assert.Contains("line 2", duplicate);

            File.WriteAllBytes(path, [0x61, 0x0A, 0xC3, 0x28, 0x0A]); // "a", then an invalid two-byte sequence
            Assert.Contains("not valid UTF-8", Assert.Throws<FormatException>(() => CharDictionary.Load(path)).Message);

            File.WriteAllText(path, " \n");
            Assert.Equal([" "], CharDictionary.Load(path).Symbols); // a line holding one space is the space
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void KnowsWhetherItHasUpperCaseLetters()
    {
        Assert.False(CharDictionary.Default.HasUpperCaseLetters);
        Assert.False(CharDictionary.FromSymbols(["a", "中", "1", "!"]).HasUpperCaseLetters);
        Assert.True(CharDictionary.FromSymbols(["a", "B"]).HasUpperCaseLetters);
        Assert.True(CharDictionary.FromSymbols(["É"]).HasUpperCaseLetters);
    }
}
