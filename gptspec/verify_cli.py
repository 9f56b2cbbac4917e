"""``gptspec verify TARGET``: verify anyone's transformer against the spec's reference.

Exit status: 0 when every component that ran passed, 1 when a component failed, 2 when the
target could not run (a bad target, layout or architecture, or a target that raises) — unlike
the other commands, where any error is 1. docs/verify.md is the manual.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from spec.errors import GptSpecError

COULD_NOT_RUN = 2


def cmd_verify(args: argparse.Namespace) -> int:
    from gptspec.files import write_text
    from gptspec.verify.report import FORMATS, result_lines
    from gptspec.verify.session import COMPONENTS, Options, verify_target

    if args.seed < 0:
        print(f"gptspec verify: error: --seed {args.seed}, but expected a whole number ≥ 0 [command line]", file=sys.stderr)
        return COULD_NOT_RUN
    components = tuple(args.components.split(",")) if args.components else tuple(COMPONENTS)
    from gptspec.verify.shard import WHOLE, parse_shard

    try:
        shard = WHOLE if args.shard is None else parse_shard(args.shard)
    except GptSpecError as error:
        print(f"gptspec verify: error: {error}", file=sys.stderr)
        return COULD_NOT_RUN
    options = Options(
        layout=args.layout, model=args.model, weights=args.weights, dtype=args.dtype, attn_implementation=args.attn_implementation,
        empty_rows=args.empty_rows, examples=args.examples, generation_examples=args.generation_examples, op_examples=args.op_examples,
        seed=args.seed, max_len=args.max_len, shrink=not args.no_shrink, localise=not args.no_localise, components=components,
        shard=shard,
    )
    interactive = sys.stderr.isatty()
    started = time.perf_counter()

    def progress(message: str) -> None:
        if args.quiet:
            return
        stamp = f"[{time.perf_counter() - started:5.1f} s] "
        if interactive:
            print(f"\r\033[K{stamp}{message[:110]}", file=sys.stderr, end="", flush=True)
        else:
            print(stamp + message, file=sys.stderr, flush=True)

    def on_result(result: Any) -> None:
        if args.quiet:
            return
        if interactive:
            print("\r\033[K", file=sys.stderr, end="")
        print("\n".join(result_lines(result)[:2]), file=sys.stderr, flush=True)

    _quiet_transformers()
    try:
        report = verify_target(args.target, options, progress=progress, on_result=on_result)
    except GptSpecError as error:
        if interactive:
            print("\r\033[K", file=sys.stderr, end="")
        print(f"gptspec verify: could not run: {error}", file=sys.stderr)
        return COULD_NOT_RUN
    if interactive and not args.quiet:
        print("\r\033[K", file=sys.stderr, end="", flush=True)
    rendered = FORMATS[args.format](report)
    if args.out:
        try:
            written = write_text(args.out, rendered, "gptspec verify --out")
        except GptSpecError as error:
            print(FORMATS["text"](report), end="")
            print(f"gptspec verify: could not write the report: {error}", file=sys.stderr)
            return COULD_NOT_RUN
        print(f"wrote {written}", file=sys.stderr)
        if args.format != "text":
            print(FORMATS["text"](report), end="")
    else:
        print(rendered, end="")
    for result in report.results:
        if result.status == "error":
            print(f"gptspec verify: {result.component} could not run: {result.error}", file=sys.stderr)
    return report.exit_code


def _quiet_transformers() -> None:
    """A small vocabulary makes transformers warn that GPT-2's default special-token ids lie
    outside it; those ids play no part in the logits, so the warning is noise here."""
    module = sys.modules.get("transformers")
    if module is not None:
        module.utils.logging.set_verbosity_error()
    else:
        import os

        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def add_verify_parser(sub: Any) -> None:
    """The ``verify`` subcommand (called from gptspec.cli.build_parser)."""
    from gptspec.verify.conventions import CONVENTIONS, DEFAULT_EMPTY_ROWS

    p = sub.add_parser(
        "verify",
        help="verify your transformer (a torch module, a callable over a state dict, an Implementation) against the spec",
        description=(
            "Verify TARGET against the spec's float64 reference: padded batches (left, right and fully padded rows, up to n_ctx), "
            "incremental decoding and greedy generation, each example with its own drawn θ (nonzero biases and β, gains ≠ 1, "
            "attention scores up to ±1e4). A failure is shrunk to a minimal counterexample, localised to a DAG path and op kind, "
            "and printed with a script that reproduces it. Exit status 0: every component that ran passed; 1: a failure; "
            "2: could not run. Manual: docs/verify.md."
        ),
    )
    p.add_argument("target", metavar="TARGET", help="module.path:name or path/to/file.py:name — a torch.nn.Module class, factory f(config) or "
                   "instance; a callable f(state_dict, input_ids, attention_mask, config) -> logits; or an Implementation")
    p.add_argument("--layout", help="how the target names its parameters (e.g. hf-gpt2); default: inferred from a Hugging Face class's model_type")
    p.add_argument("--model", metavar="MODEL", help="the architecture to verify against: a preset, a checkpoint directory (its config), or a "
                   "builder module:name; default: the layout's small default")
    p.add_argument("--weights", action="store_true", help="also run the padded batches with the checkpoint's own weights (--model must be a checkpoint)")
    p.add_argument("--dtype", choices=["float64", "float32", "float16", "bfloat16"],
                   help="the precision the target computes in (default: an instance's own; float32 for torch classes and factories; float64 for callables)")
    p.add_argument("--attn-implementation", choices=["eager", "sdpa"], help="a Hugging Face class's attention (default: the class's own)")
    p.add_argument("--empty-rows", choices=list(CONVENTIONS), default=DEFAULT_EMPTY_ROWS,
                   help=f"what padded positions must hold (default {DEFAULT_EMPTY_ROWS}): zero (exactly 0), uniform (softmax rows with no "
                   "allowed key are 1/S; logits finite), any-finite, ignore — see docs/verify.md")
    p.add_argument("--examples", type=int, default=12, help="padded batches (also decoded incrementally) per run (default 12)")
    p.add_argument("--generation-examples", type=int, default=3, help="left-padded prompts to generate from (default 3)")
    p.add_argument("--op-examples", type=int, default=10, help="examples per op, for an Implementation exposing op() (default 10)")
    p.add_argument("--max-len", type=int, default=16, help="the longest sequence drawn: min(n_ctx, this) (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the examples and θ draws (default 0)")
    p.add_argument("--components", help="comma-separated subset of model,decode,generate,weights,ops (default: all)")
    p.add_argument("--format", choices=["text", "json", "junit"], default="text", help="report format (default text)")
    p.add_argument("--out", metavar="FILE", help="write the report to FILE (written atomically); the text summary still goes to stdout")
    p.add_argument("--shard", metavar="I/N", help="run only shard I of N (1 ≤ I ≤ N) of the drawn cases and op components, each with exactly "
                   "its unsharded draws; N jobs together run the whole campaign; merge their JUnit reports with "
                   "python -m gptspec.verify.shard merge (docs/ci.md)")
    p.add_argument("--no-shrink", action="store_true", help="report the first failing example as found")
    p.add_argument("--no-localise", action="store_true", help="do not localise failures")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=cmd_verify)
