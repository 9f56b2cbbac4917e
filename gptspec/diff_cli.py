"""``gptspec diff A B``: what B changes relative to A (gptspec/diff.py), as tables or JSON.

Wired into gptspec/cli.py with ``add_diff_parser(sub)``; the command is :func:`cmd_diff`. Exit
status: 0 when the comparison is printed (whatever it finds), 2 when it could not run (an
unknown or unreadable model, a bad ``--set`` or ``--node``).
"""

from __future__ import annotations

import argparse


def add_diff_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``diff`` subcommand to a subparsers object."""
    p: argparse.ArgumentParser = sub.add_parser(
        "diff",
        help="what model B changes relative to model A: ops, Θ, conventions, causality",
        description="Compare two architectures as graphs: the ops B replaces, adds or removes (aligned by their position in "
        "each level's graph, composites compared inside, never matched by name), attributes and wiring that change, Θ "
        "by entry pattern with shapes and counts, the conventions that concern only one of them, the config fields that "
        "differ, and the causality and receptive field of each (dependency typing). Exit 0 when printed, 2 when it "
        "could not run. `gptspec docs B --against A` puts the same comparison in the docs site.",
    )
    target = ("a preset (see `gptspec presets`), a checkpoint (a Hugging Face directory or a gptspec θ file), or a builder "
              "module.path:name / file.py:name returning a config or an architecture")
    p.add_argument("a", metavar="A", help="the model compared against: " + target)
    p.add_argument("b", metavar="B", help="the model whose changes are listed: " + target)
    p.add_argument("--set-a", action="append", default=[], metavar="KEY=VALUE", help="change a config field of preset A (repeatable)")
    p.add_argument("--set-b", action="append", default=[], metavar="KEY=VALUE", help="change a config field of preset B (repeatable)")
    p.add_argument("--node-a", default="", metavar="PATH", help="compare the composite at this node path of A (e.g. encoder.blocks.0) "
                   "instead of the whole model; --node-b defaults to it")
    p.add_argument("--node-b", default="", metavar="PATH", help="the composite of B to compare (e.g. blocks.0); --node-a defaults to it")
    p.add_argument("--format", choices=["text", "json"], default="text", help="tables (default) or JSON")
    p.set_defaults(run=cmd_diff)
    return p


def cmd_diff(args: argparse.Namespace) -> int:
    from gptspec.diff import compare, text, to_json
    from gptspec.models import resolve

    a = resolve(args.a, args.set_a, need_theta=False, progress=False)
    b = resolve(args.b, args.set_b, need_theta=False, progress=False)
    d = compare(a.arch, b.arch, a.source, b.source, args.node_a, args.node_b)
    print(to_json(d) if args.format == "json" else text(d))
    return 0
