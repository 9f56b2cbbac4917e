"""The cost of `gptspec docs`: seconds and bytes of the HTML site of presets from gpt2-small to
gpt2-xl, split into building the architecture, collecting the content (equations included) and
writing the pages, with the number of drawings and of `<details>` in index.html (what grows with
the layers and heads, and what does not). Prints a table; nothing is asserted about time.

    python benchmarks/docs_site.py [--presets gpt2-small,gpt2-medium,gpt2-xl] [--repeat 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_average, machine  # noqa: E402

from gptspec.docs.content import collect  # noqa: E402
from gptspec.docs.site import write_html  # noqa: E402
from spec import build, preset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="gpt2-small,gpt2-medium,gpt2-xl")
    parser.add_argument("--repeat", type=int, default=1, help="runs per preset; the fastest is shown")
    args = parser.parse_args()
    print(machine())
    print(f"{'preset':<14}{'build s':>9}{'collect s':>11}{'write s':>9}{'total s':>9}{'index KB':>10}{'site KB':>9}{'drawings':>10}{'details':>9}")
    for name in args.presets.split(","):
        best: tuple[float, float, float] | None = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            arch = build(preset(name).config)
            t1 = time.perf_counter()
            site = collect(arch, f"preset {name}")
            t2 = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                files = write_html(site, Path(out))
                t3 = time.perf_counter()
                index = (Path(out) / "index.html").read_text()
                size = sum(f.stat().st_size for f in files)
            run = (t1 - t0, t2 - t1, t3 - t2)
            best = run if best is None or sum(run) < sum(best) else best
        assert best is not None
        svgs, details = index.count('<svg class="graph"'), index.count('<details class="level"')
        print(f"{name:<14}{best[0]:>9.2f}{best[1]:>11.2f}{best[2]:>9.2f}{sum(best):>9.2f}{len(index.encode()) / 1000:>10.0f}"
              f"{size / 1000:>9.0f}{svgs:>10}{details:>9}")
    print(f"load average: {load_average()}")


if __name__ == "__main__":
    main()
