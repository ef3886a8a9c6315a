"""A small built-in text the synthetic vocabularies are learned from.

English prose, a little code, digits, whitespace runs and a few non-ASCII words, so that
the learned merges / pieces look like a real (if tiny) tokenizer's. Changing this text
changes every synthetic vocabulary: do it only on purpose.
"""

TEXT = """\
The quick brown fox jumps over the lazy dog. The dog did not mind; it was asleep in the sun.
Once upon a time there was a little model that wanted to read very long stories. It could only
remember a few thousand words at once, so it learned to keep notes and to look back at them.
When the story grew longer than its memory, the model grouped distant positions together and
kept the nearest ones exact. That is how it found the pass key hidden in the middle of the text.
The pass key is 68217. Remember it. The grass is green. The sky is blue. The sun is yellow.
Here we go. There and back again. What is the pass key? The pass key is 68217.

In the beginning the runtime loads the weights from the file, checks every field, and maps the
tensors into memory without copying them. Then it reads the vocabulary, builds the tokenizer,
and waits for the first prompt. Each token becomes a vector; each vector passes through the
layers; the last layer turns it back into a score for every word in the vocabulary.

def attention(query, keys, values, scale):
    scores = [scale * sum(q * k for q, k in zip(query, key)) for key in keys]
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    return [sum(w * v[i] for w, v in zip(weights, values)) / total for i in range(len(values[0]))]

for (int i = 0; i < n; ++i) {
    sum += x[i] * y[i];
}

Numbers: 0 1 2 3 4 5 6 7 8 9 10 12 100 1024 2048 4096 3.14159 2.71828 1e-5 -42 +7 1,000,000.
Whitespace:  two  spaces,   three   spaces,\ttabs\tand
newlines.

Other languages: café, naïve, résumé, Straße, élève, über, São Paulo, Ærø, ñandú.
日本語のテキスト。中文文本。한국어 텍스트. Русский текст. Ελληνικά. عربى. हिन्दी.
Emoji: 🙂 🚀 👍🏽 ❤️ ✨.

She said, "It's fine, we'll see." They're here; I'm there; you've been; he'd go; it'll rain.
A long time ago, in a galaxy far, far away, a small tokenizer learned its first merges.
"""
