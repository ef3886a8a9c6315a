"""Texts the tokenizer tests compare against reference tokenizers: hand-picked cases for each
regex branch and script, plus seeded random mixes of the characters that stress them."""
import random

HAND_PICKED = [
    "", " ", "  ", "\n", "\t", "a", "Hello", " Hello", "Hello world", "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "It's a dog's life; they're sure we've seen what I'm doing, he'll say he'd go. Don't!",
    "IT'S LOUD, THEY'RE HERE, WE'VE GOT IT, I'M OK, WE'LL SEE, HE'D GO",
    "'s 't 're 've 'm 'll 'd ' s'' '''",
    "multiple   internal    spaces", "  leading and trailing spaces  ", "trailing space ",
    "tabs\tand\ttabs\t\t\tmore", "line\nbreaks\n\nand\r\nwindows\r\n", "\n\n\n", "  \n  \n\t \n x",
    "mixed \t \n whitespace \u00a0 nbsp \u2003 em-space \u3000 ideographic", "a\u2028b\u2029c\u0085d",
    "1", "12", "123", "1234", "12345", "1234567890", "3.14159 and 1,000,000 and -42 and 0x1F",
    "version 2.0.1-beta+build.123", "phone: +1 (555) 123-4567", "٣٤٥ ١٢ ۱۲۳ १२३ ½ ² Ⅻ ①",
    "Punctuation!!! ??? ... --- (parens) [brackets] {braces} <angle> \"quotes\" `ticks`",
    "$100 + 5% = <= >= != == ^^ ~~ || && @@ ## **",
    "def foo(x):\n    return x ** 2  # square\n\nclass Bar:\n\tpass\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "const f = async () => { await fetch('https://example.com/api?q=1&r=2'); };",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "Café naïve résumé façade Ångström coöperate São Paulo Zürich",
    "e\u0301 combining acute, n\u0303, a\u0308\u0304 stacked",
    "Ελληνικά κείμενο, Русский текст и Українська мова",
    "مرحبا بالعالم", "שלום עולם", "हिन्दी पाठ", "ภาษาไทย", "ქართული",
    "你好，世界！这是一个测试。", "日本語のテキストとカタカナ ー", "한국어 텍스트입니다",
    "Emoji: 😀👍🏽🇺🇸 and ❤️ and 👨‍👩‍👧‍👦 family",
    "🙂🙂🙂🙂", "∑∫∂√∞≈≠≤≥ ⊂⊃∪∩ →←↑↓", "©®™ §¶† •… ‰ €£¥₹",
    "mixed: English, 中文, русский, العربية, 123, 😀!",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|endoftext|>", "text<|im_end|>more", "<|im_start|", "<repo_name>pyllong<file_sep>",
    "\u0000null\u0001ctrl\u007f\u001b[31mred\u001b[0m",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "ÀÁÂÃÄÅ àáâãäå ÿ \u00c0\u00c1",
    "a" * 300, " " * 100, "ab " * 200, "9" * 50, "!" * 40, "\n" * 30,
]

# Characters that change which regex branch fires, across scripts and categories.
_ALPHABET = list(
    "aZ 0189'’\"-_.,;:!?()[]{}<>/\\|@#$%^&*+=~`\t\n\r"
    "éÀÿñßœ" "ΩЖж" "中文日本語한국" "٣१½²Ⅻ" "😀👍🏽❤️" "\u00a0\u2003\u3000\u200b" "ʼˆ˚" "\u0301\u0308"
) + ["'s", "'ll", "'RE", "  ", "\r\n", "123", "<|im_start|>", "<|im_end|>"]


def random_texts(n=300, seed=1234, max_len=40):
    rng = random.Random(seed)
    return ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, max_len))) for _ in range(n)]


CORPUS = HAND_PICKED + random_texts()
