"""``gptspec docs TARGET --out DIR``: the documentation of an architecture's math, generated from
the executed objects (gptspec/docs/), as a static HTML site or as Markdown.

Wired into gptspec/cli.py with ``add_docs_parser(sub)``; the command is :func:`cmd_docs`.
"""

from __future__ import annotations

import argparse
import time

from spec.errors import ConfigError


def add_docs_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``docs`` subcommand to a subparsers object."""
    p: argparse.ArgumentParser = sub.add_parser(
        "docs",
        help="write the documentation of an architecture's math (HTML site or Markdown)",
        description="Write the documentation of an architecture, generated from the objects the reference executes: the model "
        "and every composite as equations derived from their graphs, the whole model as numbered pseudocode (algorithm.html), "
        "the graph as an SVG drawn from the DAG (composites as expandable clusters, identical ones drawn once), every op's definition (MathML from its own "
        "LaTeX), types, parameters, dependency rule, citation and reference source, Θ with shapes and counts, the theorems "
        "that apply and the conventions an implementer must match. The HTML site works from file:// with no network.",
    )
    p.add_argument(
        "model", metavar="TARGET",
        help="a preset (see `gptspec presets`), a checkpoint (a Hugging Face directory or a gptspec θ file), or a builder "
        "module.path:name / file.py:name returning a config or an architecture",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="the directory to write into (created if missing; files in it are overwritten)")
    p.add_argument("--format", choices=["html", "markdown"], default="html", help="html (a static site; default) or markdown (math in $…$)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change a config field of a preset, e.g. --set n_layers=4")
    p.add_argument("--against", metavar="A", help="also write what TARGET changes relative to model A (ops, Θ, conventions, causality; "
                   "the same comparison as `gptspec diff A TARGET`) as a page of the site")
    p.add_argument("--set-against", action="append", default=[], metavar="KEY=VALUE", help="change a config field of preset A")
    p.set_defaults(run=cmd_docs)
    return p


def cmd_docs(args: argparse.Namespace) -> int:
    from gptspec.docs import write_docs
    from gptspec.models import resolve

    if not args.out:
        raise ConfigError("--out '', but expected a directory [gptspec docs]")
    started = time.perf_counter()
    model = resolve(args.model, args.set, need_theta=False)
    diff = None
    if args.against:
        from gptspec.diff import compare

        base = resolve(args.against, args.set_against, need_theta=False)
        diff = compare(base.arch, model.arch, base.source, model.source)
    elif args.set_against:
        raise ConfigError(f"--set-against {args.set_against}, but expected it only with --against [gptspec docs]")
    files = write_docs(model.arch, args.out, args.format, model.source, model.note, diff=diff)
    seconds = time.perf_counter() - started
    entry = next((f for f in files if f.name in ("index.html", "index.md")), files[0])
    size = sum(f.stat().st_size for f in files)
    print(f"{model.source}: wrote {len(files)} files ({size / 2**20:.1f} MiB) to {args.out} in {seconds:.1f} s; open {entry}")
    return 0
