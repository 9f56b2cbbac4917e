"""``gptspec verify TARGET``: verify anyone's transformer against the spec's reference.

Exit status: 0 when every component that ran passed, 1 when a component failed, 2 when the
target could not run (a bad target, layout or architecture, or a target that raises) — the
contract of every command (README, "Exit status"). docs/verify.md is the manual.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from spec.errors import GptSpecError

COULD_NOT_RUN = 2


def cmd_verify(args: argparse.Namespace) -> int:
    from gptspec.verify.report import result_lines
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
    out = None
    if args.out:
        try:
            out = _checked_out(args.out)  # before the target is loaded: a bad --out never costs a run
        except GptSpecError as error:
            print(f"gptspec verify: could not run: {error}", file=sys.stderr)
            return COULD_NOT_RUN
    options = Options(
        layout=args.layout, model=args.model, weights=args.weights, dtype=args.dtype, attn_implementation=args.attn_implementation,
        empty_rows=args.empty_rows, examples=args.examples, generation_examples=args.generation_examples, op_examples=args.op_examples,
        seed=args.seed, max_len=args.max_len, shrink=not args.no_shrink, localise=not args.no_localise, components=components,
        shard=shard, sets=tuple(args.set), isolate=not args.in_process, call_timeout=args.call_timeout or None,
        timeout=args.timeout or None, cost_limit=not args.no_cost_limit,
        identify=True if args.identify else (False if args.no_identify else None),
    )
    grad = _grad_options(args)  # --grad / --train-step: gptspec/verify/grad.py
    if isinstance(grad, int):
        return grad
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
        if grad is not None:
            from gptspec.verify.grad import verify_grad

            report = verify_grad(args.target, options, grad, progress=progress, on_result=on_result)
        else:
            report = verify_target(args.target, options, progress=progress, on_result=on_result)
    except GptSpecError as error:
        if interactive:
            print("\r\033[K", file=sys.stderr, end="")
        print(f"gptspec verify: could not run: {error}", file=sys.stderr)
        return COULD_NOT_RUN
    if interactive and not args.quiet:
        print("\r\033[K", file=sys.stderr, end="", flush=True)
    if args.save_layout and _save_layout(args.save_layout, report) is None:
        return COULD_NOT_RUN
    if args.identify and report.identified is not None and report.identified.get("passed"):
        flags = report.identified["flags"] or " ".join(f"--set {k}={_flag(v)}" for k, v in report.function.items() if v is not None)
        print(f"gptspec verify --identify: {flags}", file=sys.stderr)
    try:
        return _write(args, report, out, interactive)
    except BrokenPipeError:  # standard output closed (piped into head): the verdict still decides the exit status
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(report.exit_code)


def _grad_options(args: argparse.Namespace) -> Any:
    """The gradient run's options (None: a forward run), or the exit status of a refused flag."""
    if not (args.grad or args.train_step):
        given = [flag for flag, value, default in (("--reduction", args.reduction, "mean"), ("--label-smoothing", args.label_smoothing, 0.0),
                                                   ("--z-loss", args.z_loss, 0.0), ("--ignore-index", args.ignore_index, -100),
                                                   ("--grad-examples", args.grad_examples, 6)) if value != default]
        if given:
            print(f"gptspec verify: error: {given[0]} without --grad, but expected it with --grad or --train-step [command line]", file=sys.stderr)
            return COULD_NOT_RUN
        return None
    from gptspec.verify.grad import GradOptions
    from spec.objective import Objective

    try:
        objective = Objective(ignore_index=args.ignore_index, label_smoothing=args.label_smoothing, z_loss=args.z_loss, reduction=args.reduction)
        grad = GradOptions(grad=args.grad, train_step=args.train_step, objective=objective, examples=args.grad_examples)
        grad.check()
    except GptSpecError as error:
        print(f"gptspec verify: error: {error}", file=sys.stderr)
        return COULD_NOT_RUN
    refused = [flag for flag, given in (("--identify", args.identify), ("--save-layout", args.save_layout), ("--shard", args.shard),
                                        ("--components", args.components), ("--weights", args.weights)) if given]
    if refused:
        flag = refused[0]
        print(f"gptspec verify: error: {flag} with --grad/--train-step, but expected it with a forward run [command line]", file=sys.stderr)
        return COULD_NOT_RUN
    return grad


def _write(args: argparse.Namespace, report: Any, out: str | None, interactive: bool) -> int:
    from gptspec.files import write_text
    from gptspec.verify.report import FORMATS

    rendered = FORMATS[args.format](report)
    if out is not None:
        try:
            written = write_text(out, rendered, "gptspec verify --out")
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
    code: int = report.exit_code
    return code


def _flag(value: object) -> str:
    """A config value as ``--set`` reads it (gptspec.models.parse_overrides)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def _save_layout(path: str, report: Any) -> str | None:
    """Write the run's layout as Python (``--save-layout``): an inferred one as its table, a
    registered one as a reference to its name. None (after saying why) when it cannot be written."""
    from gptspec.checkpoint import LAYOUTS
    from gptspec.files import write_text
    from gptspec.verify.layouts import layout_source

    lay = LAYOUTS.get(report.layout)
    if lay is None:
        print(f"gptspec verify: could not write --save-layout {path}: layout {report.layout} is not known here", file=sys.stderr)
        return None
    if lay.name.startswith("auto-"):
        source = layout_source(lay, f"for {report.target}")
    else:
        source = (f'"""The registered layout {lay.name} (gptspec verify --save-layout for {report.target}); pass it back with --layout THIS_FILE.py."""\n\n'
                  f"from gptspec.checkpoint import layout\n\nLAYOUT = layout({lay.name!r})\n")
    try:
        written = write_text(path, source, "gptspec verify --save-layout")
    except GptSpecError as error:
        print(f"gptspec verify: could not write the layout: {error}", file=sys.stderr)
        return None
    print(f"wrote layout {lay.name} to {written}", file=sys.stderr)
    return str(written)


def _checked_out(path: str) -> str:
    """``--out`` as an absolute path (so a target that changes directory cannot move the
    report), checked writable before anything runs."""
    import os

    from gptspec.files import check_output_path
    from spec.errors import FileError

    checked = os.path.abspath(check_output_path(path, "gptspec verify --out"))
    parent = os.path.dirname(checked)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FileError(f"--out {path}: directory {parent} is not writable, but expected a directory the report can be written into [gptspec verify]")
    if os.path.exists(checked) and not os.access(checked, os.W_OK):
        raise FileError(f"--out {path}: {checked} is not writable, but expected a file the report can replace [gptspec verify]")
    return checked


def _seconds(text: str) -> float:
    """A time limit on the command line: seconds > 0, or 0 for none."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}, but expected a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}, but expected a finite number of seconds ≥ 0 (0: no limit)")
    return value


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
    p.add_argument("--layout", help="how the target names its parameters: a registered layout (e.g. hf-gpt2, nanogpt, meta-llama), auto "
                   "(inferred from the module's parameter names, shapes and orientation, confirmed on a random θ), or FILE.py defining LAYOUT "
                   "(as --save-layout writes it); default: from a Hugging Face class's model_type, else auto for torch modules")
    p.add_argument("--save-layout", metavar="FILE.py", help="write the layout the run used (an inferred one as a table to keep and edit) to FILE.py")
    p.add_argument("--identify", action="store_true", help="search the architecture's registered variants (activation, ε, scale, rotary …) for the one "
                   "the target computes, even when it passes, and print it as --set flags (it runs anyway when a component fails)")
    p.add_argument("--no-identify", action="store_true", help="do not search for the variant a failing target computes")
    p.add_argument("--model", metavar="MODEL", help="the architecture to verify against: a preset, a checkpoint directory (its config), or a "
                   "builder module:name; default: the layout's small default")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a config field of the architecture (a preset's, or the layout's default), e.g. --set activation=gelu_erf "
                   "or --set tied=false (repeatable; type-checked as for params/forward; refused for a checkpoint)")
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
    p.add_argument("--call-timeout", type=_seconds, default=60.0, metavar="SECONDS",
                   help="the longest one call of the target may take (default 60; 0: no limit); a call over it is a failure with its "
                   "input as the counterexample (exit 1)")
    p.add_argument("--timeout", type=_seconds, default=0.0, metavar="SECONDS",
                   help="the longest the whole run may take (default: no limit); past it the run stops and exits 2")
    p.add_argument("--no-cost-limit", action="store_true",
                   help="run a campaign beyond the cost bounds (by default a run estimated above 200,000 reference evaluations or "
                   "20,000 GFLOP is refused before anything is built, with the estimate)")
    p.add_argument("--in-process", action="store_true",
                   help="run the target in this process (for a debugger); unsafe for CI: a target that exits or crashes ends the run "
                   "and no time limit applies to its calls. By default it runs in a child process (docs/verify.md, \"Isolation\")")
    g = p.add_argument_group("training code (docs/verify.md, \"Verifying training code\")")
    g.add_argument("--grad", action="store_true", help="verify the torch target's gradients instead of its forward: ∂L/∂θ of the spec's loss "
                   "(its logits back-propagated with the spec's ∂L/∂logits) and of its own loss (labels= → .loss) when it has one, every "
                   "parameter mapped through the layout to Θ and judged against the reference's backward; a failure names the Θ entry and "
                   "the op whose gradient first disagrees in backward order")
    g.add_argument("--train-step", metavar="MODULE:FUNCTION", help="verify a training step step(model, micro_batches) that accumulates .grad "
                   "over micro-batches of {input_ids, labels, attention_mask} against the spec's gradient of the whole batch's token-mean "
                   "loss (catches per-micro-batch normalisation and a wrong label shift); with --grad, both run")
    g.add_argument("--grad-examples", type=int, default=6, help="examples per gradient component (default 6)")
    g.add_argument("--reduction", choices=["mean", "sequence", "sum"], default="mean",
                   help="the spec loss's reduction for --grad (default mean: over every counted token of the batch)")
    g.add_argument("--label-smoothing", type=float, default=0.0, help="the spec loss's label smoothing ε for --grad (default 0)")
    g.add_argument("--z-loss", type=float, default=0.0, help="the spec loss's z-loss coefficient ζ for --grad (default 0)")
    g.add_argument("--ignore-index", type=int, default=-100, help="the label that is not scored (default -100, Hugging Face's)")
    p.add_argument("--no-shrink", action="store_true", help="report the first failing example as found")
    p.add_argument("--no-localise", action="store_true", help="do not localise failures")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=cmd_verify)
