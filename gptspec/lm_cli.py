"""Command-line tools for text: ``gptspec bpe train|encode|decode``, ``gptspec generate`` and
``gptspec score``. :func:`add_parsers` adds them to the ``gptspec`` parser; every command
function takes the parsed arguments and returns the exit status, raising spec.errors types
for input it refuses (``gptspec.cli.main`` prints them and exits 2, could not run).

Inputs are read through :mod:`gptspec.files` (capped, UTF-8 checked, never blocking on a FIFO);
numeric options are checked before any model is built or any file written; ``bpe train``
checks ``--out`` before training and writes the directory atomically."""

from __future__ import annotations

import argparse
import functools
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from gptspec.files import check_output_path, read_stdin, read_text
from spec.errors import ConfigError, FileError, GptSpecError, TokenError
from spec.tokenizer import BPE, END_OF_TEXT, GPT2_PATTERN, check_target, unicode_to_bytes

IMPLEMENTATIONS = ("reference", "fast")

MAX_SEED = 2**63
"""Seeds are whole numbers 0 ≤ seed < 2^63 (numpy's generators refuse negative seeds; the bound
is the one :func:`spec.theta.random_theta` states)."""

_ID = re.compile(r"-?[0-9]+")


def _shown(text: str, limit: int = 40) -> str:
    """``repr(text)`` cut to about ``limit`` characters, for a message."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text):,} characters)"


def parse_ids(
    text: str, where: str, fix: str = 'give ids separated by spaces or commas, e.g. "464 2068 7586"', limit: int | None = None
) -> list[int]:
    """Token ids (ASCII decimal whole numbers, optionally negative so that the range check can
    name them) separated by spaces and/or commas; the empty string is the empty sequence. With
    ``limit`` (a model's n_ctx), more ids than that are refused as soon as they are seen."""
    if not isinstance(text, str):
        raise TokenError(f"token ids of type {type(text).__name__}, but expected a string of ids [{where}]")
    ids = []
    for i, match in enumerate(re.finditer(r"[^\s,]+", text)):
        part = match.group()
        if not _ID.fullmatch(part):
            raise TokenError(f"token {i}={_shown(part)}, but expected a whole number [{where}]; {fix}")
        if len(part.lstrip("-+0")) > 18:  # beyond 10^18: no vocabulary is that large, and int64 ends near 9.2·10^18
            raise TokenError(f"token {i}={_shown(part)} is outside every vocabulary, but expected 0 ≤ id < the model's n_vocab [{where}]")
        if limit is not None and i >= limit:
            raise TokenError(
                f"token ids: more than {limit}, but expected at most n_ctx={limit} [{where}]; "
                "the model has no positions beyond n_ctx"
            )
        ids.append(int(part))
    return ids


def _impl(name: str, command: str) -> str:
    if name not in IMPLEMENTATIONS:
        raise ConfigError(f"--impl {name!r}, but expected one of {list(IMPLEMENTATIONS)} [gptspec {command}]")
    return name


def _whole(value: int, option: str, command: str, least: int = 0, below: int | None = None, fix: str = "") -> int:
    """An integer option in [least, below), refused otherwise."""
    if value < least or (below is not None and value >= below):
        bound = f"{least} ≤ {option.lstrip('-')}" + (f" < {below if below != MAX_SEED else '2^63'}" if below is not None else "")
        raise ConfigError(f"{option} {value}, but expected a whole number {bound} [gptspec {command}]" + (f"; {fix}" if fix else ""))
    return value


def _seed(value: int, option: str, command: str) -> int:
    return _whole(value, option, command, 0, MAX_SEED, "numpy's generators take no negative seeds")


def _text_argument(value: str, command: str) -> str:
    """A TEXT argument: the text itself, ``-`` for standard input, or ``@FILE`` for a file's text
    (both UTF-8, at most :data:`gptspec.files.MAX_TEXT_BYTES`)."""
    if value == "-":
        return read_stdin(f"gptspec {command}")
    if value.startswith("@"):
        return read_text(value[1:], f"gptspec {command}")
    return value


def _load_tokenizer(directory: str, command: str) -> BPE:
    from gptspec.bpe_files import load

    if directory == "":
        raise FileError(f"--tokenizer '', but expected a tokenizer directory or .tiktoken file [gptspec {command}]")
    return load(directory)


def _guard(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Errors stay on one line (a newline in a file name is shown as ``\\n``), and text the
    terminal's encoding cannot show is a clean error, not a traceback (our own text handling
    refuses unencodable input with TokenError first, so a UnicodeEncodeError that escapes a
    command comes from writing to standard output or error)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except GptSpecError as error:  # one line, whatever a file name or a value holds
            message = str(error)
            if "\n" in message or "\r" in message:
                raise type(error)(message.replace("\r", "\\r").replace("\n", "\\n")) from None
            raise
        except UnicodeEncodeError as error:
            raise ConfigError(
                f"output character {_shown(error.object[error.start:error.end])}, but expected text the output encoding "
                f"{error.encoding} can show [gptspec {args.command}]; set PYTHONIOENCODING=utf-8"
            ) from None

    return run


class Progress:
    """Merges done / target on standard error: a rewritten line on a terminal, every 10 % otherwise."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled
        self.label = label
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.shown = -1.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        fraction = done / total
        now = time.perf_counter()
        if self.tty:
            if now - self.shown < 0.2 and done < total:
                return
            self.shown = now
            end = "\n" if done >= total else "\r"
        else:
            step = int(fraction * 10)
            if step <= self.shown and done < total:
                return
            self.shown = step
            end = "\n"
        print(f"{self.label}: {done}/{total} merges ({100 * fraction:.0f}%), {now - self.start:.1f} s", file=sys.stderr, end=end, flush=True)


# -- gptspec bpe -------------------------------------------------------------------------------


def cmd_bpe_train(args: argparse.Namespace) -> int:
    from gptspec.bpe_files import save

    where = "gptspec bpe train"
    impl = _impl(args.impl, "bpe train")
    check_output_path(args.out, f"{where} --out", directory=True)  # before the work, not after it
    special = [] if args.no_special else (args.special or [END_OF_TEXT])
    check_target(args.vocab_size, special)
    for name in special:
        if len(name) == 1 and name in unicode_to_bytes():
            raise TokenError(
                f"--special {name!r}, but expected a name that is not a one-byte token's byte-level text [{where}]; "
                "vocab.json could not tell them apart"
            )
    documents = [read_stdin(where) if name == "-" else read_text(name, where) for name in args.corpus]
    size = sum(len(d.encode("utf-8")) for d in documents)
    if size == 0:
        raise ConfigError(
            f"corpus={' '.join(args.corpus)} of 0 bytes, but expected some text [gptspec bpe train]; "
            "BPE learns merges from the corpus's adjacent bytes"
        )
    if impl == "fast":
        from fast.bpe import train
    else:
        from reference.bpe import train
    if not args.quiet:
        print(f"bpe train ({impl}): pre-tokenizing {size:,} bytes in {len(documents)} document(s) …", file=sys.stderr, flush=True)
    started = time.perf_counter()
    result = train(documents, args.vocab_size, special, args.pattern, Progress(not args.quiet, f"bpe train ({impl})"))
    seconds = time.perf_counter() - started
    out = save(result.bpe, args.out)
    bpe = result.bpe
    print(f"trained {bpe.n_vocab} tokens = 256 bytes + {len(bpe.merges)} merges + {len(bpe.special)} special "
          f"from {size:,} bytes in {seconds:.2f} s ({impl})")
    if result.exhausted:
        print(f"note: the corpus ran out of pairs: {bpe.n_vocab} tokens, fewer than --vocab-size {args.vocab_size}", file=sys.stderr)
    print(f"wrote {out / 'vocab.json'}, merges.txt, gptspec_tokenizer.json" + (", tokenizer.tiktoken" if (out / "tokenizer.tiktoken").exists() else ""))
    return 0


def cmd_bpe_encode(args: argparse.Namespace) -> int:
    from fast.bpe import Encoder

    bpe = _load_tokenizer(args.tokenizer, "bpe encode")
    text = _text_argument(args.text, "bpe encode")
    ids = Encoder(bpe).encode(text, "all" if args.allow_special else "none")
    print(" ".join(str(i) for i in ids))
    return 0


def cmd_bpe_decode(args: argparse.Namespace) -> int:
    from fast.bpe import Encoder

    bpe = _load_tokenizer(args.tokenizer, "bpe decode")
    ids = parse_ids(_text_argument(args.ids, "bpe decode"), "gptspec bpe decode")
    encoder = Encoder(bpe)
    raw = encoder.decode_bytes(ids)
    text = raw.decode("utf-8", errors="replace")
    if args.bytes:
        print(raw.hex(" "))
    else:
        sys.stdout.write(text + ("" if args.no_newline else "\n"))
    if text.encode("utf-8") != raw:
        print("note: the bytes are not valid UTF-8; each invalid sequence is shown as U+FFFD (errors=\"replace\")", file=sys.stderr)
    return 0


# -- gptspec generate / score --------------------------------------------------------------


def _check_common(args: argparse.Namespace, command: str) -> None:
    """The options ``generate`` and ``score`` share, checked before any work."""
    _impl(args.impl, command)
    _seed(args.weights_seed, "--weights-seed", command)
    if args.dtype is None:
        args.dtype = "float64"
    elif args.impl == "reference" and args.dtype != "float64":
        raise ConfigError(
            f"--dtype {args.dtype} with --impl reference, but expected --dtype float64 [gptspec {command}]; "
            "the reference computes in float64 only (use --impl fast for float32, float16 or bfloat16)"
        )


def _model_and_tokens(args: argparse.Namespace, command: str, text: str | None, tokens: str | None) -> tuple[Any, BPE | None, list[int]]:
    from gptspec.models import Run, resolve

    if text is not None and tokens is not None:
        raise ConfigError(f"both a text and --tokens, but expected one of them [gptspec {command}]")
    if text is None and tokens is None:
        raise ConfigError(f"no input, but expected a text (with --tokenizer) or --tokens IDS [gptspec {command}]")
    raw = _text_argument(text, command) if text is not None else None  # read the input before the model is built
    bpe = _load_tokenizer(args.tokenizer, command) if args.tokenizer is not None else None
    # a checkpoint is read lazily (memory maps); a run that cannot fit is refused with the numbers first
    model = resolve(args.model, args.set, need_theta=True, seed=args.weights_seed, lazy=True,
                    run=Run(args.impl, args.dtype or "float64", command=command))
    if model.theta is None:
        raise ConfigError(f"no weights for {args.model} [gptspec {command}]")
    n_vocab = model.arch.dim("n_vocab")
    if bpe is not None and bpe.n_vocab > n_vocab:
        raise ConfigError(
            f"tokenizer n_vocab={bpe.n_vocab}, but expected at most the model's n_vocab={n_vocab} [gptspec {command} {args.tokenizer}]; "
            f"use a tokenizer trained to --vocab-size ≤ {n_vocab}, or (a preset) --set n_vocab={bpe.n_vocab}"
        )
    n_ctx = model.arch.dim("n_ctx")
    if raw is not None and bpe is not None:
        from fast.bpe import Encoder

        longest = max([len(t) for t in bpe.tokens.values()] + [len(name.encode("utf-8")) for name in bpe.special])
        if len(raw) > n_ctx * longest:  # characters ≤ bytes: encoding could only end in a refusal, maybe minutes later
            raise TokenError(
                f"text of {len(raw):,} characters, but expected at most n_ctx × the longest token = {n_ctx} × {longest} bytes "
                f"[gptspec {command}]; no longer text fits in the model's {n_ctx} positions"
            )
        ids = Encoder(bpe).encode(raw, "all")
    elif raw is not None:  # no tokenizer: the text must be ids
        ids = parse_ids(
            raw, f"gptspec {command}, no --tokenizer",
            "without a tokenizer the input is token ids, e.g. \"1 2 3\"; give --tokenizer DIR to encode text", n_ctx,
        )
    else:
        ids = parse_ids(tokens or "", f"gptspec {command} --tokens", limit=n_ctx)
    return model, bpe, ids


def _runner(args: argparse.Namespace, model: Any, impl: str) -> Any:
    """The implementation object every model command runs through (gptspec/run.py): the
    reference or fast/, with an encoder–decoder's source sequence when one is given."""
    from gptspec.run import runner

    source = None if getattr(args, "source", None) is None else parse_ids(args.source, f"gptspec {args.command} --source")
    return runner(impl, model.arch, model.theta, args.dtype or "float64", source)


def cmd_generate(args: argparse.Namespace) -> int:
    from spec.lm import Sampler, check_generation

    impl = _impl(args.impl, "generate")
    _check_common(args, "generate")
    _seed(args.seed, "--seed", "generate")
    _whole(args.max_new_tokens, "--max-new-tokens", "generate")
    sampler = Sampler(args.temperature, args.top_k, args.seed)
    model, bpe, prompt = _model_and_tokens(args, "generate", args.prompt, args.tokens)
    check_generation(len(prompt), args.max_new_tokens, model.arch.dim("n_ctx"), "gptspec generate")
    n_vocab = model.arch.dim("n_vocab")
    for i in args.stop:
        _whole(i, "--stop", "generate", 0, n_vocab, "a stop id must be an id of the model's vocabulary")
    stop: set[int] = set(args.stop)
    if bpe is not None and END_OF_TEXT in bpe.special and not args.no_stop:
        stop.add(bpe.special[END_OF_TEXT])
    started = time.perf_counter()
    new = _runner(args, model, impl).generate(prompt, args.max_new_tokens, sampler, stop)
    seconds = time.perf_counter() - started
    rule = "greedy" if sampler.greedy else f"sampling, temperature {sampler.temperature}, top-k {sampler.top_k or 'all'}, seed {sampler.seed}"
    print(f"{model.source}: {len(prompt)} prompt + {len(new)} new tokens, {rule}, impl {impl}, {seconds:.2f} s", file=sys.stderr)
    if model.note:
        print(f"note: {model.note}", file=sys.stderr)
    if bpe is not None:
        from fast.bpe import Encoder

        encoder = Encoder(bpe)
        sys.stdout.write((encoder.decode(prompt) if args.echo else "") + encoder.decode(new) + "\n")
    else:
        print(" ".join(str(v) for v in ([*prompt, *new] if args.echo else new)))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    impl = _impl(args.impl, "score")
    _check_common(args, "score")
    _whole(args.show, "--show", "score", fix="0 lists none")
    model, bpe, ids = _model_and_tokens(args, "score", args.text, args.tokens)
    started = time.perf_counter()
    lp = _runner(args, model, impl).token_log_probs(ids)
    seconds = time.perf_counter() - started
    import math

    total = float(math.fsum(lp))
    print(f"{model.source}: {len(ids)} tokens, {len(lp)} predicted, impl {impl}, {seconds:.2f} s")
    if model.note:
        print(f"note: {model.note}")
    def describe(v: int) -> str:
        if bpe is None or not (v in bpe.tokens or v in bpe.special.values()):
            return ""
        return repr(bpe.decode([v]))

    for t, value in enumerate(lp[: args.show]):
        print(f"  t={t + 1:<5} id={ids[t + 1]:<7} {describe(ids[t + 1]):<16} log p={value: .6f}")
    if len(lp) > args.show:
        print(f"  … {len(lp) - args.show} more")
    if len(lp):
        h = -total / len(lp)
        perplexity = f"{math.exp(h):.4f}" if h < math.log(sys.float_info.max) else f"e^{h:.6f} (beyond float64's range)"
        print(f"log-likelihood {total:.6f} nats; cross-entropy {h:.6f} nats/token; perplexity {perplexity}")
    else:
        print("log-likelihood 0 (fewer than 2 tokens: nothing is predicted); cross-entropy undefined")
    print(repr(total))
    return 0


# -- the parsers -------------------------------------------------------------------------------


def add_parsers(sub: Any) -> None:
    """Add ``bpe``, ``generate`` and ``score`` to the subparsers object of the ``gptspec`` parser."""
    bpe = sub.add_parser(
        "bpe",
        help="train a byte-level BPE tokenizer, encode and decode text",
        description="Byte-level BPE (docs/tokenizer.md): train a vocabulary on a corpus, encode text to ids, decode ids to text.",
    )
    bsub = bpe.add_subparsers(dest="bpe_command", required=True, metavar="COMMAND")
    tokenizer_help = "a tokenizer directory (vocab.json + merges.txt, GPT-2's format) or a .tiktoken rank file"

    p = bsub.add_parser(
        "train",
        help="learn the merges from a corpus",
        description="Learn a byte-level BPE vocabulary: pre-tokenize the corpus with the pattern, then repeatedly merge the most "
        "frequent adjacent pair (ties: the smaller pair in byte order) until the vocabulary has --vocab-size tokens "
        "(256 bytes + merges + special tokens). Writes vocab.json, merges.txt (GPT-2's format), gptspec_tokenizer.json and "
        "tokenizer.tiktoken into --out.",
    )
    p.add_argument("corpus", nargs="+", metavar="CORPUS", help="UTF-8 text files, each a document of at most 256 MiB ('-' reads standard input)")
    p.add_argument("--vocab-size", type=int, required=True, help="the target size, special tokens included (≥ 256 + their number)")
    p.add_argument("--out", required=True, metavar="DIR", help="the directory to write (its parent must exist); written atomically: "
                   "in an existing directory the four files are replaced together, other files left alone")
    p.add_argument("--special", action="append", metavar="NAME", help=f"a special token (repeatable; default {END_OF_TEXT})")
    p.add_argument("--no-special", action="store_true", help="no special tokens")
    p.add_argument("--pattern", default=GPT2_PATTERN, help="the pre-tokenization regex (default GPT-2's)")
    p.add_argument("--impl", default="fast", help="fast (incremental counts, default) or reference (recounts every step)")
    p.add_argument("--quiet", action="store_true", help="no progress on standard error")
    p.set_defaults(run=_guard(cmd_bpe_train))

    p = bsub.add_parser("encode", help="text → token ids", description="Print the ids of a text, separated by spaces.")
    p.add_argument("tokenizer", metavar="DIR", help=tokenizer_help)
    p.add_argument("text", metavar="TEXT", help="the text; '-' reads standard input, @FILE a file")
    p.add_argument("--allow-special", action="store_true", help=f"read special token names in the text (e.g. {END_OF_TEXT}) as special tokens; by default they are plain text")
    p.set_defaults(run=_guard(cmd_bpe_encode))

    p = bsub.add_parser(
        "decode",
        help="token ids → text",
        description="Print the text of token ids. Bytes that are not valid UTF-8 are shown as U+FFFD (errors=\"replace\", as GPT-2).",
    )
    p.add_argument("tokenizer", metavar="DIR", help=tokenizer_help)
    p.add_argument("ids", metavar="IDS", help="ids separated by spaces or commas; '-' reads standard input")
    p.add_argument("--bytes", action="store_true", help="print the bytes in hex instead of the text")
    p.add_argument("--no-newline", action="store_true", help="do not end the output with a newline")
    p.set_defaults(run=_guard(cmd_bpe_decode))

    model_help = ("a preset (seeded random weights, see `gptspec presets`), a checkpoint (a Hugging Face directory of any layout gptspec "
                  "reads: GPT-2, Llama, Mistral, Qwen2, Marian; or a .safetensors θ file written by gptspec), or a builder "
                  "module.path:name / file.py:name")
    set_help = "override a config field of a preset, e.g. --set n_vocab=4096 (repeatable)"

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", metavar="CHECKPOINT_OR_PRESET", help=model_help)
        p.add_argument("--tokenizer", metavar="DIR", help=tokenizer_help + "; its ids must fit the model's n_vocab")
        p.add_argument("--tokens", metavar="IDS", help="token ids instead of text, e.g. \"1 2 3\"")
        p.add_argument("--source", metavar="IDS", help="an encoder–decoder's source sequence as token ids (the target is --tokens/--prompt/--text)")
        p.add_argument("--impl", default="fast", help="fast (batched, KV cache; default) or reference (literal float64, no cache)")
        p.add_argument("--dtype", default=None, choices=["float64", "float32", "float16", "bfloat16"],
                       help="the precision of --impl fast (default float64; float16 and bfloat16 store in the half precision and compute in "
                       "float32; the reference is float64 only)")
        p.add_argument("--weights-seed", type=int, default=0, help="the θ seed: seed of a preset's random weights, 0 ≤ seed < 2^63 (default 0; "
                       "what --seed is for forward and check)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)

    p = sub.add_parser(
        "generate",
        help="continue a prompt",
        description="Generate tokens after a prompt: greedy by default (the lowest id among the largest logits), or sampling "
        "with --temperature and --top-k from a seeded generator (docs/tokenizer.md defines both). Prints the continuation: "
        "text with --tokenizer, ids otherwise.",
    )
    common(p)
    p.add_argument("--prompt", metavar="TEXT", help="the prompt: text with --tokenizer (special names like <|endoftext|> are read as special tokens), "
                   "token ids without; '-' reads standard input, @FILE a file")
    p.add_argument("--max-new-tokens", type=int, required=True, metavar="N", help="tokens to generate at most")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 samples")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k largest logits (default all)")
    p.add_argument("--seed", type=int, default=0, help="the sampling seed: seed of the draws of --temperature > 0, 0 ≤ seed < 2^63 (default 0); "
                   "not the weights' seed, which is --weights-seed here (forward's and check's --seed)")
    p.add_argument("--stop", type=int, action="append", default=[], metavar="ID", help="stop after this id, an id of the model's vocabulary (repeatable)")
    p.add_argument("--no-stop", action="store_true", help=f"do not stop at the tokenizer's {END_OF_TEXT}")
    p.add_argument("--echo", action="store_true", help="print the prompt before the continuation")
    p.set_defaults(run=_guard(cmd_generate))

    p = sub.add_parser(
        "score",
        help="the log-likelihood of a text or a token sequence",
        description="Score a sequence: log p of every token after the first, their sum (the log-likelihood, nats), the "
        "cross-entropy and the perplexity. The last line is the log-likelihood alone.",
    )
    common(p)
    p.add_argument("--text", metavar="TEXT", help="the text to score: text with --tokenizer, token ids without; '-' reads standard input, @FILE a file")
    p.add_argument("--show", type=int, default=16, help="tokens to list, ≥ 0 (default 16)")
    p.set_defaults(run=_guard(cmd_score))
