"""Cost up front: what a run will read, compute and hold, estimated before it starts, and the
refusal of a run that cannot fit in memory (docs/performance.md, "Cost up front").

* :func:`parameters_of` counts a config's parameters without building its whole DAG: a model
  with more than :data:`EXTRAPOLATE_ABOVE` layers is counted at 1, 2 and 3 layers (2, 4 and 6
  for a family that needs an even depth) and, when the count is linear in depth there (every
  block the same size), extrapolated — exactly, as the tests check against the full count. Building gpt3-175b
  takes seconds; counting it this way takes a fraction of one, so a hostile size is refused at
  once. A family whose count is not linear in depth is built and counted.
* :func:`estimate` gives parameters, bytes read from storage, FLOPs of one forward and the peak
  memory of a run (θ as the implementation holds it, plus activations);
* :func:`check_fits` refuses, with the numbers, a run whose estimate exceeds the memory the
  machine has available (``MemAvailable`` of /proc/meminfo, else ``os.sysconf``; the
  environment variable ``GPTSPEC_AVAILABLE_MEMORY``, in bytes, overrides it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spec import build
from spec.config import Config
from spec.counting import count
from spec.errors import ConfigError
from spec.graph import Architecture

EXTRAPOLATE_ABOVE = 6
"""Models deeper than this are counted by extrapolation from three shallow depths when linear."""

ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}


def parameters_of(config: Config) -> int:
    """The parameter count of ``config``'s architecture (= ``count(build(config))``), without
    building it whole when it is deep (module docstring)."""
    layers = getattr(config, "n_layers", None)
    if isinstance(layers, int) and layers > EXTRAPOLATE_ABOVE and "n_layers" in config.field_names():
        for depths in ((1, 2, 3), (2, 4, 6)):
            try:
                a, b, c = (count(build(config.replace(n_layers=n))) for n in depths)
            except ConfigError:
                continue
            step = depths[1] - depths[0]
            if b - a == c - b and (b - a) % step == 0:
                return a + (layers - depths[0]) * ((b - a) // step)
            break
    return count(build(config))


def available_memory() -> int:
    """Bytes of memory available to a new allocation now: ``GPTSPEC_AVAILABLE_MEMORY`` if set,
    else ``MemAvailable`` (free plus reclaimable page cache), else free physical pages."""
    override = os.environ.get("GPTSPEC_AVAILABLE_MEMORY")
    if override:
        try:
            return int(override)
        except ValueError:
            raise ConfigError(f"GPTSPEC_AVAILABLE_MEMORY={override!r}, but expected a whole number of bytes [environment]") from None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))


def _dims(config: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "n_vocab", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            out[name] = value
    if "d_head" not in out and "d_model" in out and out.get("n_heads"):
        out["d_head"] = out["d_model"] // out["n_heads"]
    if "d_mlp" not in out and "d_model" in out:
        out["d_mlp"] = 4 * out["d_model"]
    return out


@dataclass(frozen=True)
class Estimate:
    """What one run costs, before it starts."""

    parameters: int
    bytes_to_read: int
    """From storage: a checkpoint's tensors (0 for seeded random weights)."""
    flops: float
    """One forward of ``tokens`` positions (a multiply-add counts 2): 2·N·T for the parameters
    (the reference multiplies the one-hot matrix literally, so W_E counts) plus 4·L·T²·d_attn
    for attention's two products."""
    memory: int
    """Peak bytes: θ as the implementation holds it plus the activations in flight."""
    tokens: int
    what: str

    def line(self) -> str:
        return (f"estimate: {self.parameters:,} parameters, {_bytes(self.bytes_to_read)} to read, "
                f"{self.flops / 1e9:,.1f} GFLOP per forward of {self.tokens} tokens, about {_bytes(self.memory)} of memory ({self.what})")


def _bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} B"


def estimate(
    config: Any, *, impl: str, dtype: str = "float64", tokens: int = 16, batch: int = 1, parameters: int | None = None,
    bytes_to_read: int = 0, theta: str = "drawn", largest_block: int | None = None,
) -> Estimate:
    """The cost of running ``config``'s model: ``impl`` ``"reference"`` or ``"fast"`` in ``dtype``
    on ``batch`` × ``tokens`` positions, with θ ``"drawn"`` (seeded, float64 in memory),
    ``"loaded"`` (a checkpoint read whole into float64) or ``"lazy"`` (a memory-mapped checkpoint
    the reference reads an entry at a time: ``largest_block`` bytes of float64 θ at once)."""
    n = parameters_of(config) if parameters is None else parameters
    d = _dims(config)
    L, dm, dh, H = d.get("n_layers", 1), d.get("d_model", 1), d.get("d_head", 1), d.get("n_heads", 1)
    d_attn = dh * H
    flops = 2.0 * n * tokens * batch + 4.0 * L * tokens * tokens * d_attn * batch
    width = max(dm, d.get("d_mlp", dm), d_attn)
    held = 8 * n if theta in ("drawn", "loaded") else 0  # θ in float64, in memory, before the run
    if impl == "reference":
        # float64; the literal one-hot and the logits (T × n_vocab each), a few rows of every width,
        # each head's T × T scores; θ made float64 again (drawn/loaded) or one block at a time (lazy)
        activations = 8 * tokens * (3 * d.get("n_vocab", 0) + 16 * width) + 8 * 4 * tokens * tokens * H
        extra = 8 * n if theta != "lazy" else 2 * (largest_block if largest_block is not None else 8 * n // max(L, 1))
        memory = held + extra + activations
    else:
        size = ITEMSIZE.get(dtype, 8)
        compute = 4 if size == 2 else size
        rows = tokens * batch
        activations = rows * compute * (3 * d.get("n_vocab", 0) + 8 * width) + batch * H * 64 * 64 * compute * 4
        memory = held + size * n + activations
    what = f"{impl}" + (f" in {dtype}" if impl == "fast" else " in float64") + {
        "drawn": ", seeded random θ drawn in float64", "loaded": ", θ read into float64",
        "lazy": ", θ read from memory maps an entry at a time"}.get(theta, "")
    return Estimate(n, bytes_to_read, flops, memory, tokens * batch, what)


def largest_live_theta(arch: Architecture, shapes: Mapping[str, tuple[int, ...]] | None = None) -> int:
    """The most float64 θ bytes the reference holds at once when it reads a lazy θ (each entry
    from the first op that reads it to the last: reference.evaluate)."""
    from reference.interpreter import plan

    p = plan(arch)
    sizes = {name: 8 * _prod(shape) for name, shape in (shapes or arch.theta_shapes()).items()}
    events: list[tuple[int, int]] = []
    for name, first in p.first_use.items():
        events.append((first, sizes.get(name, 0)))
        events.append((p.last_use[name] + 1, -sizes.get(name, 0)))
    live = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        live += delta
        peak = max(peak, live)
    return peak


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


def check_fits(est: Estimate, where: str, available: int | None = None) -> None:
    """Refuse, with the numbers, a run whose estimated memory exceeds what is available."""
    have = available_memory() if available is None else available
    if est.memory > have:
        raise ConfigError(
            f"estimated memory={_bytes(est.memory)} ({est.parameters:,} parameters; {est.what}), but expected at most the "
            f"{_bytes(have)} this machine has available [{where}]; use a smaller model, fast/ in a smaller dtype, or the "
            "reference on a checkpoint (read lazily, one block at a time)"
        )


# -- a verification campaign's cost (gptspec verify) ------------------------------------------

MAX_CAMPAIGN_FORWARDS = 200_000
"""The most reference evaluations (sequences, op examples) ``gptspec verify`` runs without
``--no-cost-limit``: about 1,000 times its default campaign."""
MAX_CAMPAIGN_GFLOP = 20_000.0
"""The most reference GFLOP (float64, literal) ``gptspec verify`` runs without ``--no-cost-limit``:
hours of the reference on one core."""


@dataclass(frozen=True)
class Campaign:
    """What a ``gptspec verify`` campaign asks of the reference, computed from the options and the
    config alone (nothing is built or drawn): sequences evaluated and their GFLOP."""

    forwards: int
    tokens: int
    gflop: float
    parameters: int

    def line(self) -> str:
        return (f"about {self.forwards:,} reference evaluations of up to {self.tokens} tokens, "
                f"{self.gflop:,.0f} GFLOP in float64 ({self.parameters:,} parameters)")


def campaign(config: Any, *, examples: int, generation_examples: int, op_examples: int, max_len: int,
             components: tuple[str, ...] = ("model", "decode", "generate", "weights", "ops")) -> Campaign:
    """The reference's share of a campaign: each padded batch's rows (up to 4) evaluated once
    (decoding and the checkpoint's weights reuse or repeat them), each generation's rows (up to
    3) at each new token's length (up to 5), each op example once per distinct op (at most 32);
    a shrink or a localisation adds a bounded number more."""
    d = _dims(config)
    width = max(1, min(int(max_len), d.get("n_ctx", max_len)))
    rows = 0
    if "model" in components or "decode" in components:
        rows += 4 * examples * (2 if "weights" in components else 1)
    if "generate" in components:
        rows += 3 * 5 * generation_examples
    ops = 32 * op_examples if "ops" in components else 0
    n = parameters_of(config)
    per_row = estimate(config, impl="reference", tokens=width, parameters=n).flops
    return Campaign(rows + ops, width, rows * per_row / 1e9, n)


def check_campaign(c: Campaign, where: str, flag: str = "--no-cost-limit") -> None:
    """Refuse, with the estimate and the flag that overrides it, a campaign beyond the bounds."""
    if c.forwards > MAX_CAMPAIGN_FORWARDS or c.gflop > MAX_CAMPAIGN_GFLOP:
        raise ConfigError(
            f"campaign cost={c.line()}, but expected at most {MAX_CAMPAIGN_FORWARDS:,} evaluations and {MAX_CAMPAIGN_GFLOP:,.0f} GFLOP "
            f"[{where}]; lower --examples, --generation-examples, --op-examples or --max-len, or pass {flag} to run it anyway"
        )
