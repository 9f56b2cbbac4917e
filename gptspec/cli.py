"""The ``gptspec`` command line."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence

import numpy as np

from spec import PRESETS, GptSpecError, TokenError
from spec.counting import breakdown, count, symbolic_count
from spec.errors import ConfigError


def parse_tokens(text: str) -> list[int]:
    """Token ids separated by spaces and/or commas; the empty string is the empty sequence."""
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    ids = []
    for i, part in enumerate(parts):
        try:
            ids.append(int(part))
        except ValueError:
            raise TokenError(
                f"token {i}={part!r}, but expected a whole number [--tokens]; give ids separated by spaces or commas, e.g. \"464 2068 7586\""
            ) from None
    return ids


def cmd_presets(args: argparse.Namespace) -> int:
    from spec import build_gpt

    print(f"{'preset':<24}{'layers':>7}{'d_model':>9}{'heads':>7}{'d_head':>8}{'n_ctx':>7}{'parameters':>17}")
    for name, p in PRESETS.items():
        c = p.config
        print(f"{name:<24}{c.n_layers:>7}{c.d_model:>9}{c.n_heads:>7}{c.head_width:>8}{c.n_ctx:>7}", end="")
        print(f"{count(build_gpt(c)) if args.count else '':>17}")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from gptspec.models import resolve

    model = resolve(args.model, args.set, need_theta=False)
    arch = model.arch
    if model.note:
        print(f"note: {model.note}")
    if args.symbolic:
        formula = symbolic_count(arch)
        print(f"parameters of {arch.name} = {formula}")
        values = ", ".join(f"{k}={v}" for k, v in arch.dims.items() if k in formula.free_symbols)
        print(f"with {values}")
    else:
        total = count(arch)
        width = max(len(k) for k in breakdown(arch))
        for group, n in breakdown(arch).items():
            print(f"  {group:<{width}}  {n:>15,}  {100 * n / total:5.1f}%")
        print(f"  {'total':<{width}}  {total:>15,}")
    print(count(arch))
    return 0


def cmd_forward(args: argparse.Namespace) -> int:
    from gptspec.models import resolve

    ids = parse_tokens(args.tokens)
    if args.impl != "reference":
        raise ConfigError(f"--impl {args.impl!r}, but expected one of ['reference'] [gptspec forward]")
    model = resolve(args.model, args.set, need_theta=True, seed=args.seed)
    if model.theta is None:  # resolve(need_theta=True) always returns one
        raise ConfigError(f"no weights for {args.model} [gptspec forward]")
    from reference import forward

    start = time.perf_counter()
    logits = forward(model.arch, model.theta, ids)
    seconds = time.perf_counter() - start
    print(f"{model.source}: logits {logits.shape[0]} × {logits.shape[1]} float64, impl {args.impl}, {seconds:.2f} s")
    if model.note:
        print(f"note: {model.note}")
    for t, row in enumerate(logits[: args.show]):
        top = int(np.argmax(row))
        m = float(np.max(row))
        lse = m + float(np.log(np.sum(np.exp(row - m))))
        print(f"  t={t:<4} id={ids[t]:<7} next: argmax id={top:<7} logit={row[top]: .6f}  log p={row[top] - lse: .6f}")
    if len(logits) > args.show:
        print(f"  … {len(logits) - args.show} more positions")
    if args.out:
        np.save(args.out, logits)
        print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gptspec",
        description="A formal specification of GPT-style transformers: count, evaluate and verify models against it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("presets", help="list the named presets", description="List the named presets.")
    p.add_argument("--count", action="store_true", help="also count each preset's parameters (slower)")
    p.set_defaults(run=cmd_presets)

    model_help = f"a preset ({', '.join(PRESETS)}) or a checkpoint (a Hugging Face GPT-2 directory or a .safetensors file written by gptspec)"
    set_help = "override a config field of a preset, e.g. --set band_width=128 (repeatable)"

    p = sub.add_parser(
        "params",
        help="count parameters from Θ",
        description="Count an architecture's parameters from its parameter space Θ. "
        "Prints a breakdown, then the exact count as a plain integer on the last line.",
    )
    p.add_argument("model", metavar="PRESET_OR_CHECKPOINT", help=model_help)
    p.add_argument("--symbolic", action="store_true", help="print the count as a formula in the dims")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.set_defaults(run=cmd_params)

    p = sub.add_parser(
        "forward",
        help="evaluate the logits of a token sequence",
        description="Evaluate f_θ(ids): the T × n_vocab logits, in float64. A preset gets seeded random weights.",
    )
    p.add_argument("model", metavar="CHECKPOINT_DIR_OR_PRESET", help=model_help)
    p.add_argument("--tokens", required=True, help='token ids separated by spaces or commas, e.g. "464 2068 7586"')
    p.add_argument("--impl", default="reference", help="the implementation to run (default: reference)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights for a preset (default 0)")
    p.add_argument("--out", help="write the logits to this .npy file (float64)")
    p.add_argument("--show", type=int, default=8, help="positions to summarise (default 8)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.set_defaults(run=cmd_forward)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except GptSpecError as error:
        print(f"gptspec {args.command}: error: {error}", file=sys.stderr)
        return 1
    return code
