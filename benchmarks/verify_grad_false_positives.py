"""No false positives for ``gptspec verify --grad``: real Hugging Face GPT-2 and Llama, as they are
(tiny random configs: the layouts' defaults), over many seeds, eager and sdpa attention, float64,
float32 and bfloat16. Each seed draws its own θ per example (plain and medium scores) and its own
batches (1–3 rows, some labels ignored). Prints, per (model, attention, dtype), how many runs
passed, the worst error/budget of the spec-loss and own-loss components, and the worst error/e_store
(how much of the factor the backward used); any failure is printed. docs/tolerances.md, "gptspec
verify --grad", has the numbers; tests/test_verify_grad.py runs one seed of four combinations.

    python benchmarks/verify_grad_false_positives.py [--seeds 5] [--examples 6] [--dtypes float64,float32,bfloat16]
    python benchmarks/verify_grad_false_positives.py --bugs     # what the budget is for: the fixture bugs' error/budget
"""

from __future__ import annotations

import argparse
import os
import time

os.environ["HF_HUB_OFFLINE"] = "1"

import transformers
from common import machine

from gptspec.verify.grad import GradOptions, verify_grad

transformers.utils.logging.set_verbosity_error()

MODELS = {"gpt2": "transformers:GPT2LMHeadModel", "llama": "transformers:LlamaForCausalLM"}
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "training", "models.py")
BUGS = (("gpt_layer_norm_without_mean", "hf-gpt2"), ("gpt_softmax_without_correction", "hf-gpt2"), ("gpt_gelu_erf_derivative", "hf-gpt2"),
        ("llama_rotary_sin_flipped", "hf-llama"), ("llama_gqa_unsummed", "hf-llama"))


def bugs(examples: int, dtypes: list[str]) -> None:
    """Each hand-written backward bug of tests/fixtures/training/models.py: its error/budget (the
    first case over budget, or the worst of ``examples``), per dtype."""
    print(f"{'fixture':<34}" + "".join(f"{d:>22}" for d in dtypes))
    for factory, layout in BUGS:
        cells = []
        for dtype in dtypes:
            report = verify_grad(f"{FIXTURES}:{factory}", layout=layout, dtype=dtype, isolate=False, shrink=False, localise=False,
                                 grad=GradOptions(examples=examples, own_loss=False))
            r = report.results[0]
            cells.append(f"{r.status} {r.ratio:.3g}")
        print(f"{factory:<34}" + "".join(f"{c:>22}" for c in cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--examples", type=int, default=6)
    parser.add_argument("--models", default="gpt2,llama")
    parser.add_argument("--dtypes", default="float64,float32,bfloat16")
    parser.add_argument("--attn", default="eager,sdpa")
    parser.add_argument("--bugs", action="store_true", help="the fixture bugs' error/budget instead of the false-positive sweep")
    args = parser.parse_args()
    print(machine())
    if args.bugs:
        bugs(args.examples, args.dtypes.split(","))
        return
    print(f"seeds {args.first_seed}…{args.first_seed + args.seeds - 1}, {args.examples} batches per component and seed")
    print(f"{'model':<7}{'attention':<10}{'dtype':<10}{'runs':>5}{'passed':>8}{'grad':>9}{'own-loss':>10}{'err/e_store':>13}  seconds")
    failures = []
    for model in args.models.split(","):
        for attn in args.attn.split(","):
            for dtype in args.dtypes.split(","):
                start = time.perf_counter()
                passed, worst, per_store = 0, {"grad": 0.0, "own-loss": 0.0}, 0.0
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    report = verify_grad(MODELS[model], dtype=dtype, attn_implementation=attn, seed=seed, isolate=False, shrink=False,
                                         grad=GradOptions(examples=args.examples))
                    passed += report.exit_code == 0
                    for r in report.results:
                        worst[r.key] = max(worst[r.key], r.ratio)
                        if r.e_store > 0:
                            per_store = max(per_store, r.max_error / r.e_store)
                        if r.status != "passed":
                            failures.append(f"{model} {attn} {dtype} seed {seed} {r.key}: {r.status}: {r.detail or r.error}")
                print(f"{model:<7}{attn:<10}{dtype:<10}{args.seeds:>5}{passed:>8}{worst['grad']:>9.3f}{worst['own-loss']:>10.3f}"
                      f"{per_store:>13.1f}  {time.perf_counter() - start:.0f}", flush=True)
    for line in failures:
        print(line)


if __name__ == "__main__":
    main()
