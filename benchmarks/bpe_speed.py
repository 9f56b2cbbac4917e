"""BPE speed: fast/ vs reference/ trainer, and fast/ trainer and encoder vs Hugging Face
``tokenizers`` (and tiktoken's encoder), on a deterministic corpus. Prints ratios; asserts that
the encoders agree on the whole corpus (a benchmark that also checks).

The corpus is generated, not downloaded: a seeded numpy generator draws sentences from a
Zipf-distributed vocabulary of synthetic words (syllables, mostly Latin, some accented, Cyrillic,
Greek, CJK, emoji), with numbers, punctuation, contractions and paragraph breaks — or, with
``--corpus stdlib``, the text of this Python's standard-library ``*.py`` files in sorted order.

    python benchmarks/bpe_speed.py [--mb 4] [--vocab 4096] [--reference-kb 100] [--reference-vocab 512] [--corpus synthetic|stdlib]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

import fast.bpe as F
import reference.bpe as R
from spec.tokenizer import BPE, END_OF_TEXT, pretoken_counts, token_to_text

T = TypeVar("T")

SYLLABLES = (
    ["ka", "to", "ri", "men", "st", "qu", "an", "el", "is", "or", "th", "ing", "er", "ou", "ch", "pr", "ba", "lo",
     "ne", "vi", "sa", "de", "ul", "ex", "mo", "tra", "gr", "ion", "ay", "wh"] * 4
    + ["é", "ü", "ñ", "ø", "ß", "ça", "lé", "мо", "ро", "ва", "δα", "λο", "東", "京", "語", "の", "は", "😀"]
)


def synthetic_corpus(megabytes: float, seed: int = 0) -> list[str]:
    """Paragraphs (one per document) of about ``megabytes`` MB of UTF-8 in total."""
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(SYLLABLES, size=rng.integers(1, 5))) for _ in range(30000)]
    weights = 1.0 / (np.arange(len(words)) + 2.7)
    weights /= weights.sum()
    target = int(megabytes * 1e6)
    documents: list[str] = []
    size = 0
    while size < target:
        sentences = []
        for _ in range(int(rng.integers(2, 8))):
            n = int(rng.integers(4, 20))
            picked = [words[i] for i in rng.choice(len(words), size=n, p=weights)]
            picked[0] = picked[0].capitalize()
            for k in range(n):
                r = rng.random()
                if r < 0.04:
                    picked[k] += rng.choice(["'s", "'ll", "'re", "'t"])
                elif r < 0.08:
                    picked[k] = str(int(rng.integers(0, 10000)))
                elif r < 0.13:
                    picked[k] += rng.choice([",", ";", ":", " —", " (x)"])
            sentences.append(" ".join(picked) + str(rng.choice([".", ".", ".", "!", "?", "..."])))
        paragraph = " ".join(sentences) + ("\n\n" if rng.random() < 0.8 else "\n    ")
        documents.append(paragraph)
        size += len(paragraph.encode("utf-8"))
    return documents


def stdlib_corpus(megabytes: float) -> list[str]:
    """The standard library's ``*.py`` files, sorted by path, until ``megabytes`` MB."""
    root = Path(sysconfig.get_paths()["stdlib"])
    documents: list[str] = []
    size = 0
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or size >= megabytes * 1e6:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        documents.append(text)
        size += len(text.encode("utf-8"))
    return documents


def timed(fn: Callable[[], T], repeat: int = 1) -> tuple[float, T]:
    """Median seconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result  # type: ignore[return-value]


def hf_train(documents: list[str], vocab: int) -> tuple[Any, list[tuple[str, str]]]:
    import json

    import tokenizers

    tok = tokenizers.ByteLevelBPETokenizer()
    tok.train_from_iterator(documents, vocab_size=vocab, min_frequency=1, special_tokens=[END_OF_TEXT], show_progress=False)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return tok, merges  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=4.0, help="corpus size for fast vs Hugging Face (default 4 MB)")
    parser.add_argument("--vocab", type=int, default=4096, help="target vocabulary for fast vs Hugging Face (default 4096)")
    parser.add_argument("--reference-kb", type=float, default=100.0, help="corpus size for fast vs reference (default 100 KB)")
    parser.add_argument("--reference-vocab", type=int, default=512, help="target vocabulary for fast vs reference (default 512)")
    parser.add_argument("--corpus", choices=["synthetic", "stdlib"], default="synthetic")
    parser.add_argument("--repeat", type=int, default=3, help="encode timings: median of this many runs")
    args = parser.parse_args()
    import tiktoken
    import tokenizers

    from gptspec.bpe_files import save

    print(f"python {sys.version.split()[0]}, tokenizers {tokenizers.__version__}, tiktoken {tiktoken.__version__}, "
          f"cores {os.cpu_count()}, RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'unset')}")
    make = (lambda mb: synthetic_corpus(mb)) if args.corpus == "synthetic" else stdlib_corpus

    # 1. trainers: fast vs reference
    small = make(args.reference_kb / 1000)
    small_bytes = sum(len(d.encode()) for d in small)
    t_ref, ref = timed(lambda: R.train(small, args.reference_vocab, [END_OF_TEXT]))
    t_fast, fst = timed(lambda: F.train(small, args.reference_vocab, [END_OF_TEXT]))
    if fst.bpe.merges != ref.bpe.merges:
        raise SystemExit("fast and reference trainers disagree")
    print(f"\ntrain {small_bytes / 1e3:.0f} KB to {args.reference_vocab}: reference {t_ref:.2f} s, fast {t_fast:.3f} s, "
          f"reference/fast = {t_ref / t_fast:.0f}×  (same {len(fst.bpe.merges)} merges)")

    # 2. trainers: fast vs Hugging Face
    documents = make(args.mb)
    text = "".join(documents)
    n_bytes = len(text.encode("utf-8"))
    t_fast, result = timed(lambda: F.train(documents, args.vocab, [END_OF_TEXT]))
    t_pre, _ = timed(lambda: pretoken_counts(documents, special=[END_OF_TEXT]))
    t_hf, (hf_tok, hf_merges) = timed(lambda: hf_train(documents, args.vocab))
    bpe: BPE = result.bpe
    ours = [(token_to_text(a), token_to_text(b)) for a, b in bpe.merges]
    common = len(set(ours) & set(hf_merges))
    prefix = next((i for i, (x, y) in enumerate(zip(ours, hf_merges)) if x != tuple(y)), min(len(ours), len(hf_merges)))
    print(f"\ntrain {n_bytes / 1e6:.2f} MB ({args.corpus}) to {args.vocab}: fast {t_fast:.2f} s, Hugging Face {t_hf:.2f} s, "
          f"fast/HF = {t_fast / t_hf:.1f}×; of fast's time, pre-tokenization and counting take {t_pre:.2f} s")
    print(f"  merges: ours {len(ours)}, HF {len(hf_merges)}, in common {common}, identical prefix {prefix} "
          "(HF breaks count ties by its internal ids, we by byte order)")

    # 3. encoders on the whole corpus with our vocabulary
    import tempfile

    directory = save(bpe, tempfile.mkdtemp())
    hf = tokenizers.ByteLevelBPETokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))
    tik = tiktoken.Encoding("bench", pat_str=bpe.pattern, mergeable_ranks=bpe.rank_of_token(), special_tokens=dict(bpe.special))

    def cold() -> list[int]:
        return F.Encoder(bpe).encode(text)

    warm_encoder = F.Encoder(bpe)
    warm_encoder.encode(text)
    t_cold, ids = timed(cold, args.repeat)
    t_warm, ids_warm = timed(lambda: warm_encoder.encode(text), args.repeat)
    t_hf_one, hf_ids = timed(lambda: hf.encode(text).ids, args.repeat)
    t_hf_batch, hf_batch = timed(lambda: hf.encode_batch(documents), args.repeat)
    t_tik, tik_ids = timed(lambda: tik.encode_ordinary(text), args.repeat)
    t_tik_batch, _ = timed(lambda: tik.encode_ordinary_batch(documents, num_threads=os.cpu_count() or 1), args.repeat)
    if not (ids == ids_warm == hf_ids == tik_ids):
        raise SystemExit("encoders disagree on the corpus")
    per_document = F.Encoder(bpe)
    if [e.ids for e in hf_batch] != [per_document.encode(d) for d in documents]:
        raise SystemExit("batched encodings disagree")
    slice_text = text[: 200_000]
    t_ref_enc, ref_ids = timed(lambda: R.encode(bpe, slice_text))
    if ref_ids != F.Encoder(bpe).encode(slice_text):
        raise SystemExit("reference and fast encoders disagree")
    mb = n_bytes / 1e6
    print(f"\nencode {mb:.2f} MB, {len(ids):,} tokens ({n_bytes / len(ids):.2f} bytes/token), all encoders equal:")
    rows = [
        ("fast, new Encoder (cold cache)", t_cold, mb),
        ("fast, warm cache", t_warm, mb),
        ("reference (first 200,000 characters)", t_ref_enc, len(slice_text.encode()) / 1e6),
        ("HF tokenizers, encode(whole text)", t_hf_one, mb),
        ("HF tokenizers, encode_batch(documents)", t_hf_batch, mb),
        ("tiktoken, encode_ordinary(whole text)", t_tik, mb),
        ("tiktoken, encode_ordinary_batch(documents)", t_tik_batch, mb),
    ]
    base = mb / t_cold
    print(f"  {'encoder':<44} {'seconds':>8}  {'MB/s':>8}  {'÷ fast cold':>11}")
    for name, seconds, size in rows:
        print(f"  {name:<44} {seconds:8.3f}  {size / seconds:8.2f}  {size / seconds / base:10.2f}×")


if __name__ == "__main__":
    main()
