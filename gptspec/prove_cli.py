"""``gptspec prove``: run the machine-checked theorems of proofs/ and print a table.

Wired into gptspec/cli.py with ``add_prove_parser(sub)``; the command is :func:`cmd_prove`.
"""

from __future__ import annotations

import argparse
import sys
import time

from spec.errors import ConfigError


def add_prove_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``prove`` subcommand to a subparsers object."""
    p: argparse.ArgumentParser = sub.add_parser(
        "prove",
        help="run the machine-checked theorems about the spec",
        description="Prove the theorems of proofs/ with sympy from the spec's own definitions, then witness each "
        "numerically through the reference on hypothesis-drawn examples. Prints one row per theorem: name, scope "
        "(symbolic for every size, or exhaustive up to a stated size), result and seconds. Exit status 0 only if "
        "every theorem holds. docs/proofs.md states each theorem with its hypotheses.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="theorems to run (default: all; see --list)")
    p.add_argument("--list", action="store_true", help="list the theorems, one per line, and exit")
    p.add_argument("--examples", type=int, default=25, help="hypothesis examples per numeric witness (default 25; 0 skips the witnesses)")
    p.set_defaults(run=cmd_prove)
    return p


def cmd_prove(args: argparse.Namespace) -> int:
    from proofs.runner import Result, run, select

    if args.examples < 0:
        raise ConfigError(f"--examples {args.examples}, but expected a whole number ≥ 0 [gptspec prove]")
    theorems = select(args.names)
    if args.list:
        for thm in theorems:
            print(f"{thm.name:<40} {thm.scope.kind.value:<22} {thm.title}")
        return 0
    width = max(len(t.name) for t in theorems)
    print(f"gptspec prove: {len(theorems)} theorem(s); witnesses draw {args.examples} example(s) each")
    print(f"  {'theorem':<{width}}  {'scope':<22}  {'result':<8}  {'seconds':>7}")
    started = time.perf_counter()

    def show(result: Result) -> None:
        verdict = "holds" if result.holds else "FAILED"
        print(f"  {result.theorem.name:<{width}}  {result.theorem.scope.kind.value:<22}  {verdict:<8}  {result.seconds:>7.2f}", flush=True)
        if not result.holds:
            print(f"    {result.result}")
        elif result.witness == "skipped":
            print("    (proof only: the numeric witness was skipped)")

    results = run(args.names, args.examples, on_result=show)
    failed = [r.theorem.name for r in results if not r.holds]
    seconds = time.perf_counter() - started
    print(f"{len(results) - len(failed)} of {len(results)} theorems hold ({seconds:.1f} s)" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 0 if not failed else 1


def main(argv: list[str] | None = None) -> int:
    """Run ``gptspec prove`` on its own (``python -m gptspec.prove_cli``)."""
    from spec.errors import GptSpecError

    parser = argparse.ArgumentParser(prog="gptspec")
    sub = parser.add_subparsers(dest="command", required=True)
    add_prove_parser(sub)
    args = parser.parse_args(["prove", *(sys.argv[1:] if argv is None else argv)])
    try:
        code: int = args.run(args)
    except GptSpecError as error:
        print(f"gptspec prove: error: {error}", file=sys.stderr)
        return 2  # could not run (gptspec.cli.COULD_NOT_RUN); 1 is a theorem that failed
    return code


if __name__ == "__main__":
    sys.exit(main())
