"""The ``gptspec`` command line."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from gptspec import __version__
from spec import PRESETS, GptSpecError
from spec.counting import breakdown, count, symbolic_count
from spec.errors import ConfigError
from spec.lm import log_softmax


def cmd_presets(args: argparse.Namespace) -> int:
    from spec import build

    fam = max(len(p.family) for p in PRESETS.values()) + 2
    print(f"{'preset':<24}{'family':<{fam}}{'layers':>7}{'d_model':>9}{'heads':>7}{'n_ctx':>8}{'parameters':>17}")
    for name, p in PRESETS.items():
        c = p.config
        sizes = "".join(f"{getattr(c, field, '-')!s:>{width}}" for field, width in (("n_layers", 7), ("d_model", 9), ("n_heads", 7), ("n_ctx", 8)))
        print(f"{name:<24}{p.family:<{fam}}{sizes}{count(build(c)) if args.count else '':>17}")
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
        width = max((len(k) for k in breakdown(arch)), default=5)
        for group, n in breakdown(arch).items():
            print(f"  {group:<{width}}  {n:>15,}  {100 * n / total if total else 0:5.1f}%")
        print(f"  {'total':<{width}}  {total:>15,}")
    _report(arch)
    print(count(arch))
    return 0


def _report(arch: object) -> None:
    """The family's report (e.g. a compressed GPT's reduction) and the causality verdict of the
    dependency typing (gptspec/typing_report.py), before anything runs."""
    from gptspec.typing_report import verdict
    from spec import family_of
    from spec.graph import Architecture

    if not isinstance(arch, Architecture):
        return
    report = family_of(arch.config).report if arch.config is not None else None
    for line in report(arch) if report is not None else []:
        print(line)
    for line in verdict(arch).lines():
        print(line)


PASS, FAILED, COULD_NOT_RUN = 0, 1, 2
"""The exit status of every command (README, "Exit status"): success or pass; a check,
verification or proof failed; could not run (bad input, an unknown model or target, a missing or
unreadable file — and argparse's usage errors, which exit 2 themselves)."""

DTYPE_CHOICES = ["float64", "float32", "float16", "bfloat16"]
"""The dtypes fast/ runs in (fast.DTYPES)."""

MAX_EXAMPLES = 100_000
"""The most examples per component ``check`` runs in one go (a million would take days)."""


def _at_least(value: int, least: int, option: str, command: str) -> int:
    if value < least:
        raise ConfigError(f"{option} {value}, but expected a whole number ≥ {least} [gptspec {command}]")
    return value


def cmd_forward(args: argparse.Namespace) -> int:
    from gptspec.files import write_npy
    from gptspec.lm_cli import parse_ids
    from gptspec.models import LARGE, Run, check_seed, resolve
    from gptspec.run import runner

    ids = parse_ids(args.tokens, "gptspec forward --tokens")
    source = None if args.source is None else parse_ids(args.source, "gptspec forward --source")
    _at_least(args.show, 0, "--show", "forward")
    check_seed(args.seed, "--seed")
    if args.impl == "reference" and args.dtype != "float64":
        raise ConfigError(f"--dtype {args.dtype}, but expected float64 for --impl reference [gptspec forward]; the reference is the float64 meaning")
    # a checkpoint is read lazily (memory maps, an entry at a time); the run's cost is estimated and
    # a run that cannot fit is refused before any θ is drawn or read (gptspec/estimate.py)
    model = resolve(args.model, args.set, need_theta=True, seed=args.seed, lazy=True,
                    run=Run(args.impl, args.dtype, max(1, len(ids)), command="forward"))
    if model.theta is None:  # resolve(need_theta=True) always returns one
        raise ConfigError(f"no weights for {args.model} [gptspec forward]")
    start = time.perf_counter()
    large = model.estimate is not None and model.estimate.parameters >= LARGE
    if args.impl == "reference" and source is None and large:  # the literal reference, with progress per primitive
        from reference import forward
        from spec.theta import token_array

        tokens = token_array(ids, model.arch.dim("n_vocab"), model.arch.dim("n_ctx"), "gptspec forward")
        impl_name = "reference (float64)"
        logits = forward(model.arch, model.theta, tokens, progress=_Progress("gptspec forward (reference)"))
    else:
        impl = runner(args.impl, model.arch, model.theta, args.dtype, source)
        impl_name = impl.name
        logits = impl.logits(ids)
    seconds = time.perf_counter() - start
    print(f"{model.source}: logits {logits.shape[0]} × {logits.shape[1]} float64, impl {impl_name}, {seconds:.2f} s")
    if model.note:
        print(f"note: {model.note}")
    log_p = log_softmax(logits) if len(logits) else logits
    for t, row in enumerate(logits[: args.show]):
        top = int(np.argmax(row))
        print(f"  t={t:<4} id={ids[t]:<7} next: argmax id={top:<7} logit={row[top]: .6f}  log p={log_p[t, top]: .6f}")
    if len(logits) > args.show:
        print(f"  … {len(logits) - args.show} more positions")
    if args.out is not None:
        written = write_npy(args.out, logits)
        print(f"wrote {written}")
    return 0


class _Progress:
    """``progress(done, total, path)`` of a long reference run, on standard error: the block being
    run, the fraction done and the time, at most twice a second (a rewritten line on a terminal)."""

    def __init__(self, label: str) -> None:
        self.label, self.start, self.shown = label, time.perf_counter(), 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int, path: str) -> None:
        now = time.perf_counter()
        if now - self.shown < (0.5 if self.tty else 10.0) and done < total:
            return
        self.shown = now
        where = ".".join(path.split(".")[:2])
        print(f"{self.label}: {done}/{total} ops ({100 * done / total:.0f}%), at {where}, {now - self.start:.1f} s",
              file=sys.stderr, end="\r" if self.tty and done < total else "\n", flush=True)


def cmd_check(args: argparse.Namespace) -> int:
    import json

    from gptspec.models import Run, check_seed, resolve
    from gptspec.typing_report import WithoutDecoding, verdict
    from gptspec.verify import FastImplementation, Target, verify
    from gptspec.verify.component import Result
    from gptspec.verify.conventions import DESCRIPTIONS
    from gptspec.verify.session import describe_config, describe_function, function_fields
    from gptspec.verify.shard import WHOLE, describe, parse_shard

    shard = WHOLE if args.shard is None else parse_shard(args.shard)
    _at_least(args.examples, 1, "--examples", "check")
    if args.examples > MAX_EXAMPLES:
        raise ConfigError(f"--examples {args.examples}, but expected at most {MAX_EXAMPLES:,} [gptspec check]; split a long campaign into runs with other --seed values")
    check_seed(args.seed, "--seed")
    started = time.perf_counter()
    # the same resolution (and the same θ draw for a preset and a seed) as every other command;
    # it refuses, with the number, a model whose float64 θ would not fit before drawing it
    model = resolve(args.model, tuple(args.set), need_theta=True, seed=args.seed, run=Run("fast", args.dtype, 16, 3, command="check"))
    if model.theta is None:
        raise ConfigError(f"no weights for {args.model} [gptspec check]")
    target = Target(model.source, model.arch, dict(model.theta),
                    f"from gptspec.models import resolve\nmodel = resolve({args.model!r}, {tuple(args.set)!r}, need_theta=True, seed={args.seed}, progress=False)\n"
                    "from gptspec.verify import Target\ntarget = Target('model', model.arch, model.theta, '')")
    impl: Any = FastImplementation(args.dtype)
    snippet = f"from gptspec.verify import FastImplementation\nimpl = FastImplementation({args.dtype!r})"
    text = args.format == "text"
    typed = verdict(model.arch)
    base = impl  # --all-ops runs its own (causal) coverage models with it
    if not typed.causal:  # KV-cache decoding computes row t before the tokens it reads exist (gptspec/typing_report.py)
        impl = WithoutDecoding(impl)
    from gptspec.verify.coverage import missing_line

    coverage = missing_line(model.arch, args.model, args.all_ops)  # what this run does not exercise (gptspec/verify/coverage.py)
    if text:
        for line in typed.lines():
            print(line)
        if not typed.causal:
            print("  KV-cache decoding is not defined for it, so that component is not run and the check exits 1; every other component is checked")
        print(f"gptspec check: {impl.name} against the float64 reference on {target.label}")
        print(f"  architecture {model.arch.name}: {describe_config(model.arch.config)}")
        print(f"  function: {describe_function(model.arch.config)}")
        from gptspec.verify.tolerance import DEFAULT as policy
        from gptspec.verify.tolerance import longest_reduction

        described = policy.describe(args.dtype, longest_reduction(model.arch))
        print(f"  empty rows: zero — {DESCRIPTIONS['zero']}")
        print(f"{args.examples} examples per component (the model's cases drawn from seed {args.seed}, the ops' by hypothesis); {described}")
        if shard != WHOLE:
            print(f"{describe(shard)} (merge the shards' reports: docs/ci.md)")
        print(coverage)
        print(f"  {'component':<72} {'examples':>8} {'max error':>10} {'budget':>10} {'ratio':>7}  result")

    def show(result: Result) -> None:
        if not text:
            return
        verdict = {"not run": "SKIP", "passed": "PASS", "failed": "FAIL", "error": "ERROR"}[result.status]
        print(f"  {result.component[:72]:<72} {result.examples:>8} {result.max_error:>10.2e} {result.budget:>10.2e} {result.ratio:>7.3f}  {verdict}  ({result.seconds:.1f} s)", flush=True)
        if result.status == "not run":
            print(f"    {result.skipped}")
        elif result.status == "error":
            print(f"    {result.error}")
        elif not result.passed:
            print(f"    {result.detail}")
            if result.example:
                print(f"    minimal counterexample: {result.example}")
            print("    reproduce with:")
            for line in (result.counterexample or "").splitlines():
                print(f"      {line}")

    def starting(name: str) -> None:
        if text and sys.stderr.isatty():
            print(f"  … {name[:72]}", file=sys.stderr, end="\r", flush=True)

    # verify's run on fast/ (θ given, convention zero, policy DEFAULT): the model on padded batches (an encoder–decoder's
    # with their sources), KV-cache decoding, each op it uses (gptspec/verify/engine.py)
    results = verify(target, impl, snippet, examples=args.examples, seed=args.seed, on_result=show, on_start=starting, shard=shard)
    if args.grad:  # fast/'s backward against the reference's (gptspec/verify/grad.py)
        from gptspec.verify.grad import check_grad

        results += check_grad(target, args.dtype, examples=args.examples, seed=args.seed, shard=shard, on_result=show, on_start=starting)
    if args.all_ops:  # every op, mask family and padding mode of the library, and a small model of every family
        from gptspec.verify.coverage import verify_all_ops

        results += verify_all_ops(base, snippet, examples=args.examples, seed=args.seed, on_result=show, on_start=starting, shard=shard)
    failed = [r for r in results if not r.passed]
    seconds = time.perf_counter() - started
    if text:
        print(f"{len(results) - len(failed)} of {len(results)} components pass ({seconds:.1f} s)" + ("" if not failed else f"; FAILED: {', '.join(r.component for r in failed)}"))
    else:
        # non-finite numbers as "inf"/"-inf"/"nan": standard JSON (docs/verify.md, "Reports")
        from gptspec.verify.report import json_safe

        report = {"target": target.label, "implementation": impl.name, "architecture": f"{model.arch.name}: {describe_config(model.arch.config)}",
                  "function": function_fields(model.arch.config), "sets": list(args.set), "examples": args.examples, "seed": args.seed,
                  "shard": list(shard), "causality": typed.lines(), "all_ops": args.all_ops, "coverage": coverage, "passed": not failed,
                  "seconds": seconds, "results": [r.as_dict() for r in results]}
        print(json.dumps(json_safe(report), indent=2, allow_nan=False))
    return 0 if not failed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gptspec",
        description="A formal specification of GPT-style transformers: count, evaluate and verify models against it.",
        epilog="Exit status, every command: 0 success or pass, 1 a check, verification or proof failed, "
        "2 could not run (bad input, an unknown model or target, a missing file).",
    )
    parser.add_argument("--version", action="version", version=f"gptspec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("presets", help="list the named presets", description="List the named presets.")
    p.add_argument("--count", action="store_true", help="also count each preset's parameters (slower)")
    p.set_defaults(run=cmd_presets)

    model_help = (
        "a preset (see `gptspec presets`), a checkpoint (a Hugging Face directory: config.json + safetensors; "
        "or a .safetensors θ file written by gptspec), or a builder module.path:name / file.py:name returning a config or an architecture"
    )
    set_help = "change a config field of a preset, e.g. --set band_width=128 or --set bias=false (repeatable; type-checked)"
    seed_help = (
        "the θ seed: seed of a preset's or a builder's random weights (default 0): the documented draw spec.theta.preset_theta, N(0, 0.2²) with "
        "layer-norm gains 1 + N(0, 0.2²) — the same θ every command draws for a preset and a seed; generate and score call it "
        "--weights-seed (generate's --seed is its sampling seed)"
    )

    p = sub.add_parser(
        "params",
        help="count parameters from Θ",
        description="Count an architecture's parameters from its parameter space Θ. "
        "Prints a breakdown, then the exact count as a plain integer on the last line.",
    )
    p.add_argument("model", metavar="MODEL", help=model_help)
    p.add_argument("--symbolic", action="store_true", help="print the count as a formula in the dims")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.set_defaults(run=cmd_params)

    p = sub.add_parser(
        "forward",
        help="evaluate the logits of a token sequence",
        description="Evaluate f_θ(ids): the T × n_vocab logits, in float64. A preset gets seeded random weights.",
    )
    p.add_argument("model", metavar="MODEL", help=model_help)
    p.add_argument("--tokens", required=True, help='token ids separated by spaces or commas, e.g. "464 2068 7586" ("" is the empty sequence); '
                   "for an encoder–decoder, the target (decoder input, starting with its start token)")
    p.add_argument("--source", metavar="IDS", help="an encoder–decoder's source token ids (required for one, e.g. transformer-tiny or a "
                   "Hugging Face Marian directory; refused for a decoder-only model)")
    p.add_argument("--impl", default="reference", choices=["reference", "fast"], help="reference (literal, float64; default) or fast (batched)")
    p.add_argument("--dtype", default="float64", choices=DTYPE_CHOICES, help="the precision of --impl fast (default float64; float16 and "
                   "bfloat16 are storage types computed in float32, docs/tolerances.md)")
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--out", metavar="FILE", help="write the T × n_vocab logits (float64) to exactly this path, in .npy format (written atomically)")
    p.add_argument("--show", type=int, default=8, help="positions to summarise (default 8; 0 shows none)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.set_defaults(run=cmd_forward)

    p = sub.add_parser(
        "check",
        help="verify the fast implementation against the spec's reference",
        description="Verify fast/ against the float64 reference: gptspec verify's run on fast/ with the model's θ given, "
        "the zero empty-row convention and the DEFAULT policy — the whole model on padded batches (an encoder–decoder's "
        "with their sources) and with KV-cache decoding, and each op it uses on hypothesis-drawn examples and its kind's "
        "hard cases; a failure is shrunk to a minimal counterexample with Python that reproduces it (docs/verify.md). "
        "Exit status 0 only if every component passes (a component not run fails the check).",
    )
    p.add_argument("model", nargs="?", default="tiny", metavar="MODEL", help=model_help + " (default: tiny)")
    p.add_argument("--examples", type=int, default=25, help="cases per model-level component and examples per op component (default 25)")
    p.add_argument("--seed", type=int, default=0, help="seed of the examples, and of a preset's random weights (" + seed_help.split("(", 1)[1])
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="float64", help="the precision fast/ runs in (default float64; float16 and bfloat16 "
                   "store in the half precision and compute in float32, judged by the policy's half-precision budget: docs/tolerances.md)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="report format (default text)")
    p.add_argument("--shard", metavar="I/N", help="run only shard I of N (1 ≤ I ≤ N): the model's cases and the op components at positions "
                   "k with k mod N = I − 1, as verify --shard splits them, each with exactly its unsharded draws; N jobs together "
                   "run the whole check (docs/ci.md)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--grad", action="store_true", help="also check fast/'s backward: ∂L/∂θ of the next-token cross-entropy on drawn batches "
                   "(ignored labels included) against the reference's reverse pass, every Θ entry, by the gradient policy (docs/tolerances.md, "
                   "\"Gradients\")")
    p.add_argument("--all-ops", action="store_true", help="also check every op the library has (each from its own examples: every mask "
                   "family, key padding, rows with no allowed key) and a small model of every family on padded batches and decoding; "
                   "without it the report names what MODEL does not exercise")
    p.set_defaults(run=cmd_check)

    from gptspec.docs_cli import add_docs_parser
    from gptspec.lm_cli import add_parsers
    from gptspec.prove_cli import add_prove_parser
    from gptspec.verify_cli import add_verify_parser

    add_prove_parser(sub)
    add_docs_parser(sub)  # gptspec/docs_cli.py
    __import__("gptspec.diff_cli").diff_cli.add_diff_parser(sub)  # gptspec/diff_cli.py
    add_verify_parser(sub)  # gptspec/verify_cli.py
    add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status follows the one contract of every command (README, "Exit
    status"): :data:`PASS` (0), :data:`FAILED` (1, a check, verification or proof failed) or
    :data:`COULD_NOT_RUN` (2: an error message, or argparse's usage error, which exits 2 itself)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = " ".join(str(c) for c in (args.command, getattr(args, "bpe_command", None)) if c)
    try:
        if os.environ.get("GPTSPEC_THREADS"):  # fast/'s thread count: a bad value is refused before any work, not per component
            from fast.parallel import default_threads

            default_threads()
        code: int = args.run(args)
    except GptSpecError as error:
        print(f"gptspec {command}: error: {error}", file=sys.stderr)
        return COULD_NOT_RUN
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        sys.stderr.close()
        return PASS
    except KeyboardInterrupt:
        print(f"gptspec {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug of gptspec's own: shown in full, and never mistaken for a failed check (1)
        import traceback

        traceback.print_exc()
        print(f"gptspec {command}: error: an internal error (the traceback above), so the command could not run; please report it", file=sys.stderr)
        return COULD_NOT_RUN
    return code
