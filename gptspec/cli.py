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

IMPLEMENTATIONS = ["reference", "fast"]


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
    if args.impl not in IMPLEMENTATIONS:
        raise ConfigError(f"--impl {args.impl!r}, but expected one of {IMPLEMENTATIONS} [gptspec forward]")
    model = resolve(args.model, args.set, need_theta=True, seed=args.seed)
    if model.theta is None:  # resolve(need_theta=True) always returns one
        raise ConfigError(f"no weights for {args.model} [gptspec forward]")
    start = time.perf_counter()
    if args.impl == "reference":
        from reference import forward

        logits = forward(model.arch, model.theta, ids)
    else:
        import fast
        from spec.theta import token_array

        token_array(ids, model.arch.dim("n_vocab"), model.arch.dim("n_ctx"), "gptspec forward")
        logits = fast.compile(model.arch, model.theta, "float64").forward(np.asarray(ids, dtype=np.int64).reshape(1, -1))[0]
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


def cmd_check(args: argparse.Namespace) -> int:
    import json

    from gptspec.verify import FastImplementation, Target, preset_target, verify
    from gptspec.verify.engine import Result

    if args.examples < 1:
        raise ConfigError(f"--examples {args.examples}, but expected a whole number ≥ 1 [gptspec check]")
    started = time.perf_counter()
    if args.model in PRESETS:
        target = preset_target(args.model, args.seed)
    else:
        from gptspec.models import resolve

        model = resolve(args.model, (), need_theta=True, seed=args.seed)
        if model.theta is None:
            raise ConfigError(f"no weights for {args.model} [gptspec check]")
        target = Target(model.source, model.arch, model.theta,
                        f"from gptspec.checkpoint import load\narch, theta = load({args.model!r})\n"
                        "from gptspec.verify import Target\ntarget = Target('checkpoint', arch, theta, '')")
    impl = FastImplementation(args.dtype)
    snippet = f"from gptspec.verify import FastImplementation\nimpl = FastImplementation({args.dtype!r})"
    text = args.format == "text"
    if text:
        print(f"gptspec check: {impl.name} against the float64 reference on {target.label}")
        print(f"{args.examples} examples per component, hypothesis seed {args.seed}; budget = 4 × e_store + 256 u·scale (docs/tolerances.md)")
        print(f"  {'component':<72} {'examples':>8} {'max error':>10} {'budget':>10} {'ratio':>7}  result")

    def show(result: Result) -> None:
        if not text:
            return
        verdict = "SKIP" if result.skipped else ("PASS" if result.passed else "FAIL")
        print(f"  {result.component[:72]:<72} {result.examples:>8} {result.max_error:>10.2e} {result.budget:>10.2e} {result.ratio:>7.3f}  {verdict}  ({result.seconds:.1f} s)", flush=True)
        if not result.passed:
            print(f"    {result.detail}")
            print("    reproduce with:")
            for line in (result.counterexample or "").splitlines():
                print(f"      {line}")

    def starting(name: str) -> None:
        if text and sys.stderr.isatty():
            print(f"  … {name[:72]}", file=sys.stderr, end="\r", flush=True)

    results = verify(target, impl, snippet, examples=args.examples, seed=args.seed, on_result=show, on_start=starting)
    failed = [r for r in results if not r.passed]
    seconds = time.perf_counter() - started
    if text:
        print(f"{len(results) - len(failed)} of {len(results)} components pass ({seconds:.1f} s)" + ("" if not failed else f"; FAILED: {', '.join(r.component for r in failed)}"))
    else:
        print(json.dumps({"target": target.label, "implementation": impl.name, "examples": args.examples, "seed": args.seed,
                          "passed": not failed, "seconds": seconds, "results": [r.as_dict() for r in results]}, indent=2))
    return 0 if not failed else 1


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
    p.add_argument("--impl", default="reference", help="the implementation to run: reference (literal) or fast (batched, float64); default reference")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights for a preset (default 0)")
    p.add_argument("--out", help="write the logits to this .npy file (float64)")
    p.add_argument("--show", type=int, default=8, help="positions to summarise (default 8)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.set_defaults(run=cmd_forward)

    p = sub.add_parser(
        "check",
        help="verify the fast implementation against the spec's reference",
        description="Verify fast/ against the float64 reference, op by op and as a whole model (padded batches, "
        "KV-cache decoding), with hypothesis-drawn examples; a failure is shrunk to a minimal counterexample "
        "with Python that reproduces it. Exit status 0 only if every component passes.",
    )
    p.add_argument("model", nargs="?", default="tiny", metavar="PRESET_OR_CHECKPOINT", help=model_help + " (default: tiny)")
    p.add_argument("--examples", type=int, default=25, help="examples per component (default 25)")
    p.add_argument("--seed", type=int, default=0, help="seed of the examples and of a preset's random weights (default 0)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="the precision fast/ computes in (default float64)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="report format (default text)")
    p.set_defaults(run=cmd_check)

    from gptspec.lm_cli import add_parsers
    from gptspec.prove_cli import add_prove_parser

    add_prove_parser(sub)
    add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except GptSpecError as error:
        print(f"gptspec {args.command}: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        sys.stderr.close()
        return 0
    return code
