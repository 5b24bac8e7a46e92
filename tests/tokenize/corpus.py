"""Edge strings every real-vocabulary tokenizer must encode exactly like the reference.

Each entry is (label, text). Together they cover English, Mandarin, Japanese, Arabic,
Hindi, emoji with ZWJ sequences and skin tones, combining accents, code, numbers,
URLs, runs of spaces/tabs/newlines, control characters, and the special tokens.
"""

EDGE_TEXTS: list[tuple[str, str]] = [
    ("empty", ""),
    ("one char", "a"),
    ("one space", " "),
    ("english", "The quick brown fox jumps over the lazy dog. It's 5 o'clock, isn't it?"),
    ("contractions", "I'm sure you'll see they've done it; we'd go, he's gone. DON'T SHOUT'S"),
    ("mandarin", "我喜欢自然语言处理。今天天气很好，我们去公园散步吧！"),
    ("mandarin mixed", "GPT-4模型在2023年发布，支持中文和English混合输入。"),
    ("japanese", "日本語のテキストをトークン化します。カタカナとひらがな、漢字。"),
    ("arabic", "مرحبا بالعالم! هذه جملة عربية للاختبار ١٢٣."),
    ("hindi", "नमस्ते दुनिया, यह एक परीक्षण वाक्य है। ०१२३"),
    ("korean", "안녕하세요 세계"),
    ("greek", "ΣΊΣΥΦΟΣ και Ελληνικά: άλφα, βήτα."),
    ("emoji zwj", "family: 👨‍👩‍👧‍👦 and 🏳️‍🌈 flag, 🧑🏽‍💻 coder"),
    ("emoji skin tones", "👍🏻👍🏼👍🏽👍🏾👍🏿 waves 👋🏿!"),
    ("combining accents", "Cafe\u0301 nai\u0308ve re\u0301sume\u0301 vs Café naïve résumé Ångström"),
    ("code", 'def f(x):\n\treturn {"a": x**2, \'b\': [1, 2, 3]}  # comment\n\nif __name__ == "__main__":\n    f(10)\n'),
    ("numbers", "3.14159 1,000,000 -42 1e-9 0x1F 2024-01-01 12:30 ½ ⅔ Ⅻ ²"),
    ("urls", "See https://example.com/path?q=1&r=two#frag or mailto:someone@example.org."),
    ("whitespace runs", "a  b   c\t\td\n\n\ne \t \n f    \n"),
    ("leading trailing ws", "   leading and trailing   "),
    ("only newlines", "\n\n\n"),
    ("unicode spaces", "a\u00a0b\u2003c\u3000d\u202fe\u2028f\u0085g"),
    ("controls", "tab\there bell\x07 esc\x1b[0m unit\x1fsep"),
    ("zero width", "zero\u200bwidth\u200cjoiner\u200dand\ufeffbom"),
    ("replacement char", "bad \ufffd byte"),
    ("long word", "Pneumonoultramicroscopicsilicovolcanoconiosis " + "x" * 150),
    ("repeated", "aaaaaaaaaaaaaaaaaaaaaa bbbbbbbbb !!!!!!!!!!!!!!!!"),
    ("punctuation", "Hello,world!(parens)[brackets]{braces}<angles> \"quotes\" 'single' — dash… ellipsis"),
    ("math symbols", "∀x∈ℝ: x²≥0 ⇒ √x² = |x| ± ∞"),
    ("mixed scripts", "Hello 世界 مرحبا नमस्ते Привет こんにちは 🌍"),
]

SPECIAL_TEXTS: dict[str, list[tuple[str, str]]] = {
    "smollm2": [
        ("chat", "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>"),
        ("endoftext", "first document<|endoftext|>second document"),
        ("adjacent", "<|im_end|><|im_start|><|endoftext|>"),
    ],
    "minilm": [
        ("mask", "The capital of France is [MASK]."),
        ("cls sep", "[CLS] first [SEP] second [SEP]"),
        ("lowercase special is text", "[mask] [cls]"),
    ],
}
