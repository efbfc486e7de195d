namespace Crnn.Engine.Data;

/// <summary>The checks every dataset applies to a label text when it opens.</summary>
public static class LabelCheck
{
    /// <summary>Cases and encodes <paramref name="raw"/>; false with a reason and detail when the sample is unusable.</summary>
    public static bool TryEncode(string raw, CharDictionary dictionary, int maxSteps, LabelCase resolvedCase,
        out string text, out int[] label, out string reason, out string detail)
    {
        text = resolvedCase.Apply(raw);
        reason = detail = "";
        if (text.Length == 0)
        {
            (label, reason, detail) = ([], "empty label", "empty label");
            return false;
        }
        if (!dictionary.TryEncode(text, out label, out var error))
        {
            (reason, detail) = ("symbol not in the dictionary", error!);
            return false;
        }
        if (!Alignable(label, maxSteps))
        {
            (reason, detail) = ($"too long for {maxSteps} steps", $"'{text}' needs more than {maxSteps} time steps");
            return false;
        }
        return true;
    }

    /// <summary>CTC needs one step per symbol plus a blank between repeated symbols.</summary>
    public static bool Alignable(int[] label, int steps)
    {
        int needed = label.Length;
        for (int i = 1; i < label.Length; i++) if (label[i] == label[i - 1]) needed++;
        return needed <= steps;
    }
}
