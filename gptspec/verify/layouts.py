"""Layout inference: which layout a torch module's parameters follow (``--layout auto``;
docs/verify.md, "Verify a codebase you did not write").

1. **Registered layouts first**: a layout of the family whose names (with or without its prefix)
   and shapes are exactly the module's state dict (tied duplicates included) is a candidate
   (``nanogpt``, ``meta-llama``, ``hf-gpt2`` …).
2. **Otherwise, by synonyms**: each parameter is split into a per-layer template
   (``transformer.h.{i}.attn.c_attn.weight``) and matched against :data:`ROLES` — the Θ entries a
   name may hold under the names codebases use (``c_attn``/``qkv``/``query_key_value`` …), in each
   orientation the owning module allows: an ``nn.Linear`` stores (out, in), a Hugging Face
   ``Conv1D`` (in, out), a bare parameter either (TransformerLens's ``W_Q`` (n_heads, d_model,
   d_head) too). A fused QKV may stack [Q | K | V] or interleave them per head. Each consistent
   assignment covering Θ exactly once is a candidate layout.
3. **Agreement decides**: every candidate is loaded with one random θ and run on a short
   sequence; the spec's reference is the oracle. The right mapping agrees to rounding (or, for a
   model with a bug, far better than any wrong mapping); a wrong one — a square ``attn.c_proj``
   read transposed, Q | K | V read per head — visibly does not. When two candidates agree about
   equally, the inference refuses and lists them.

The inferred layout can be written as Python (:func:`layout_source`, ``--save-layout FILE.py``)
and passed back with ``--layout FILE.py`` (:func:`load_layout_file`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gptspec.checkpoint.layout import LAYOUTS, Alias, Buffer, Layout, Tensor, expected_shapes
from spec.errors import CheckpointError, ConfigError, GptSpecError
from spec.graph import Architecture

AUTO = "auto"
"""``--layout auto``: infer the layout (the default for a module class without a Hugging Face config class)."""

# -- the synonym table ----------------------------------------------------------------------

_ATT = r"(?:attn|attention|self_attn|self_attention|att|mixer)"
_MLP = r"(?:mlp|ffn|feed_forward|ff|feedforward)"
_W = r"(?:weight|w|scale|gamma|g)"
_B = r"(?:bias|b|beta)"
_LN1 = r"(?:ln_?1|norm_?1|input_layernorm|attention_norm|attn_norm|ln_attn|pre_attn_norm|norm_attn)"
_LN2 = r"(?:ln_?2|norm_?2|post_attention_layernorm|ffn_norm|mlp_norm|ln_mlp|pre_mlp_norm|norm_mlp)"
_QKV = r"(?:c_attn|qkv|attn|query_key_value|wqkv|Wqkv|qkv_proj|in_proj)"
_Q, _K, _V = (rf"(?:{n}_proj|w{n}|{long}|{n}|to_{n}|c_{n})" for n, long in (("q", "query"), ("k", "key"), ("v", "value")))
_O = r"(?:c_proj|o_proj|wo|out_proj|dense|proj|to_out|o|out)"
_FC_IN = r"(?:c_fc|fc1|fc_1|fc_in|up_proj|dense_h_to_4h|fc|w_in|w1|in_proj)"
_FC_OUT = r"(?:c_proj|fc2|fc_2|fc_out|down_proj|dense_4h_to_h|proj|w_out|w2|out_proj)"
_GATE = r"(?:w1|gate_proj|fc_1|gate|c_fc1|w_gate)"
_UP = r"(?:w3|up_proj|fc_2|up|c_fc2|w_up)"
_DOWN = r"(?:w2|down_proj|proj|down|c_proj|w_down)"

LINEAR, CONV1D, PARAM = "linear", "conv1d", "param"
"""Orientations: ``nn.Linear`` (out, in), Hugging Face ``Conv1D`` (in, out), a bare parameter."""


@dataclass(frozen=True)
class Role:
    """Θ entries (templates; ``{i}``: the layer) a tensor may hold, the names it may have (a
    regular expression over the name after the layer index, or the whole name's end for a
    global), and its forms: (orientation or "any", external pattern, Θ pattern)."""

    theta: tuple[str, ...]
    name: str
    forms: tuple[tuple[str, str, str], ...]
    layer: bool = True


def _vec(theta: str, name: str, axis: str = "d", layer: bool = True) -> Role:
    return Role((theta,), name, (("any", axis, axis),), layer)


def _proj(theta: str, name: str, out: str, inp: str, heads: str = "") -> Role:
    """A projection from ``inp`` to ``out`` features (``heads``: the Θ pattern when the output is per head)."""
    th = heads or f"{inp} {out}"
    ext_out = f"({out})" if " " in out else out
    forms = [(LINEAR, f"{ext_out} {inp}", th), (CONV1D, f"{inp} {ext_out}", th), (PARAM, f"{inp} {ext_out}", th), (PARAM, f"{ext_out} {inp}", th)]
    if heads:
        forms.append((PARAM, heads, heads))
    return Role((theta,), name, tuple(forms))


def _out_proj(theta: str, name: str) -> Role:
    """W_O: heads' outputs (h e) to d."""
    forms = ((LINEAR, "d (h e)", "h e d"), (CONV1D, "(h e) d", "h e d"), (PARAM, "(h e) d", "h e d"), (PARAM, "d (h e)", "h e d"), (PARAM, "h e d", "h e d"))
    return Role((theta,), name, forms)


def _head_bias(theta: str, name: str, g: str = "h") -> Role:
    return Role((theta,), name, (("any", f"({g} e)", f"{g} e"), ("any", f"{g} e", f"{g} e")))


def _attention(kv: str) -> list[Role]:
    a = "blocks.{i}.attn."
    fused = (a + "W_Q", a + "W_K", a + "W_V")
    fused_b = (a + "b_Q", a + "b_K", a + "b_V")
    roles = [
        _proj(a + "W_Q", rf"{_ATT}\.(?:{_Q}\.weight|W_Q)", "h e", "d", "h d e"),
        _proj(a + "W_K", rf"{_ATT}\.(?:{_K}\.weight|W_K)", f"{kv} e", "d", f"{kv} d e"),
        _proj(a + "W_V", rf"{_ATT}\.(?:{_V}\.weight|W_V)", f"{kv} e", "d", f"{kv} d e"),
        _head_bias(a + "b_Q", rf"{_ATT}\.(?:{_Q}\.bias|b_Q)"),
        _head_bias(a + "b_K", rf"{_ATT}\.(?:{_K}\.bias|b_K)", kv),
        _head_bias(a + "b_V", rf"{_ATT}\.(?:{_V}\.bias|b_V)", kv),
        _out_proj(a + "W_O", rf"{_ATT}\.(?:{_O}\.weight|W_O)"),
        _vec(a + "b_O", rf"{_ATT}\.(?:{_O}\.bias|b_O)"),
    ]
    if kv == "h":  # a fused QKV: only where K and V have as many heads as Q
        roles += [
            Role(fused, rf"{_ATT}\.(?:{_QKV}\.weight|in_proj_weight|W_QKV)", (
                (LINEAR, "(k h e) d", "h d e"), (LINEAR, "(h k e) d", "h d e"), (CONV1D, "d (k h e)", "h d e"),
                (CONV1D, "d (h k e)", "h d e"), (PARAM, "d (k h e)", "h d e"), (PARAM, "(k h e) d", "h d e"))),
            Role(fused_b, rf"{_ATT}\.(?:{_QKV}\.bias|in_proj_bias|b_QKV)", (("any", "(k h e)", "h e"), ("any", "(h k e)", "h e"))),
        ]
    return roles


_EMBED = r"(?:^|\.)(?:(?:wte|tok_embeddings|embed_tokens|token_embedding|tok_emb|word_embeddings|embed_in|embed|emb|token_emb)\.(?:weight|W_E)|W_E)$"
_POS = r"(?:^|\.)(?:(?:wpe|pos_embed|position_embeddings|pos_emb|positional_embedding|embed_positions)\.(?:weight|W_pos)|W_pos)$"
_FINAL = r"(?:ln_f|norm|ln_final|final_layernorm|final_norm|norm_f|ln_out)"
_HEAD = r"(?:^|\.)(?:(?:lm_head|output|unembed|head|embed_out)\.(?:weight|W_U)|W_U)$"
_HEAD_BIAS = r"(?:^|\.)(?:(?:lm_head|output|unembed|head|embed_out)\.(?:bias|b_U)|b_U)$"

HEAD_FORMS = ((LINEAR, "v d", "d v"), (PARAM, "d v", "d v"), (PARAM, "v d", "d v"), ("embedding", "v d", "d v"))

ROLES: dict[str, list[Role]] = {
    "gpt": [
        Role(("W_E",), _EMBED, (("any", "v d", "v d"),), layer=False),
        Role(("W_P",), _POS, (("any", "n d", "n d"),), layer=False),
        _vec("blocks.{i}.ln_1.gamma", rf"{_LN1}\.{_W}"), _vec("blocks.{i}.ln_1.beta", rf"{_LN1}\.{_B}"),
        *_attention("h"),
        _vec("blocks.{i}.ln_2.gamma", rf"{_LN2}\.{_W}"), _vec("blocks.{i}.ln_2.beta", rf"{_LN2}\.{_B}"),
        _proj("blocks.{i}.mlp.W_in", rf"{_MLP}\.(?:{_FC_IN}\.weight|W_in)", "m", "d"),
        _vec("blocks.{i}.mlp.b_in", rf"{_MLP}\.(?:{_FC_IN}\.bias|b_in)", "m"),
        _proj("blocks.{i}.mlp.W_out", rf"{_MLP}\.(?:{_FC_OUT}\.weight|W_out)", "d", "m"),
        _vec("blocks.{i}.mlp.b_out", rf"{_MLP}\.(?:{_FC_OUT}\.bias|b_out)"),
        _vec("ln_f.gamma", rf"(?:^|\.){_FINAL}\.{_W}$", layer=False), _vec("ln_f.beta", rf"(?:^|\.){_FINAL}\.{_B}$", layer=False),
        Role(("W_U",), _HEAD, HEAD_FORMS, layer=False),
    ],
    "llama": [
        Role(("W_E",), _EMBED, (("any", "v d", "v d"),), layer=False),
        _vec("blocks.{i}.norm_1.gamma", rf"{_LN1}\.{_W}"),
        *_attention("g"),
        _vec("blocks.{i}.norm_2.gamma", rf"{_LN2}\.{_W}"),
        _proj("blocks.{i}.mlp.W_gate", rf"{_MLP}\.(?:{_GATE}\.weight|W_gate)", "m", "d"),
        _proj("blocks.{i}.mlp.W_up", rf"{_MLP}\.(?:{_UP}\.weight|W_up|W_in)", "m", "d"),
        _proj("blocks.{i}.mlp.W_down", rf"{_MLP}\.(?:{_DOWN}\.weight|W_down|W_out)", "d", "m"),
        _vec("blocks.{i}.mlp.b_gate", rf"{_MLP}\.(?:{_GATE}\.bias|b_gate)", "m"),
        _vec("blocks.{i}.mlp.b_up", rf"{_MLP}\.(?:{_UP}\.bias|b_up)", "m"),
        _vec("blocks.{i}.mlp.b_down", rf"{_MLP}\.(?:{_DOWN}\.bias|b_down)"),
        _vec("norm_f.gamma", rf"(?:^|\.){_FINAL}\.{_W}$", layer=False),
        Role(("W_U",), _HEAD, HEAD_FORMS, layer=False),
    ],
}
"""Per family: every Θ entry and the names and forms a codebase may give it (docs/verify.md
shows the table). ``{i}`` is the layer; a name is matched after its layer index."""

HELD_AT_ZERO = (_HEAD_BIAS,)
"""Parameters the spec does not have and which are held at 0 (an unembedding bias, TransformerLens's
``b_U``): the function the spec defines is the module's with them zero. Reported when used."""

MAX_CANDIDATES = 64
"""The most candidate layouts agreement is asked to decide between."""


def held_at_zero(name: str, value: np.ndarray, where: str) -> None:
    """A parameter the spec lacks, accepted only at 0 (a Buffer check: an unembedding bias)."""
    if np.any(np.asarray(value) != 0):
        raise CheckpointError(f"{name} is nonzero, but expected 0: the spec's model has no such bias [checkpoint {where}]; "
                              "a checkpoint with a nonzero one computes another function")


# -- reading a module ------------------------------------------------------------------------


@dataclass
class Tensors:
    """A module's state dict as layout inference sees it."""

    shapes: dict[str, tuple[int, ...]]
    """Parameter name → shape (tied duplicates under their first name only)."""
    owners: dict[str, str]
    """Parameter name → orientation of its owner (linear, conv1d, embedding, param)."""
    aliases: dict[str, str]
    """Another state-dict name for a parameter → its first name (a tied head)."""
    buffers: set[str] = field(default_factory=set)


def module_tensors(module: Any) -> Tensors:
    import torch

    modules = dict(module.named_modules())
    buffers = {name for name, _ in module.named_buffers()}
    first: dict[int, str] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    owners: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for name, tensor in module.state_dict(keep_vars=True).items():
        if name in buffers:
            continue
        key = id(tensor)
        if key in first:
            aliases[name] = first[key]
            continue
        first[key] = name
        shapes[name] = tuple(tensor.shape)
        owner = modules.get(name.rsplit(".", 1)[0] if "." in name else "")
        if isinstance(owner, torch.nn.Linear):
            owners[name] = LINEAR
        elif type(owner).__name__ == "Conv1D":
            owners[name] = CONV1D
        elif isinstance(owner, torch.nn.Embedding):
            owners[name] = "embedding"
        else:
            owners[name] = PARAM
    return Tensors(shapes, owners, aliases, buffers)


# -- registered layouts ---------------------------------------------------------------------


def registered_matches(tensors: Tensors, arch: Architecture) -> list[Layout]:
    """Registered layouts of the architecture's family that can express its config and whose
    names and shapes are exactly the module's (tied duplicates included)."""
    from spec import family_of

    family = family_of(arch.config).name
    names = set(tensors.shapes) | set(tensors.aliases)
    out = []
    for lay in list(LAYOUTS.values()):
        if lay.family != family or lay.name.startswith("auto-"):
            continue
        try:
            lay.write_config(arch.config)
            expected = expected_shapes(lay, arch)
        except GptSpecError:
            continue
        for prefixed in (True, False):
            spelled = {lay.external_name(n, prefixed): shape for n, (shape, _) in expected.items()}
            if set(spelled) == names and all(spelled[n] == tensors.shapes[n] for n in tensors.shapes):
                out.append(lay)
                break
    return out


# -- inference by synonyms ------------------------------------------------------------------

_LAYER = re.compile(r"\.(\d+)\.")


def split_layer(name: str) -> tuple[str, int | None]:
    """``a.h.3.attn.w`` → (``a.h.{i}.attn.w``, 3); a name without a layer index → (name, None)."""
    m = _LAYER.search(name)
    if m is None:
        return name, None
    return name[: m.start()] + ".{i}." + name[m.end():], int(m.group(1))


def _theta_shape(role: Role, form: tuple[str, str, str], shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...] | None:
    """The external shape a form gives for layer 0's Θ entries (None if Θ lacks them)."""
    from gptspec.checkpoint.layout import STACK, Pattern

    names = [t.format(i=0) for t in role.theta]
    if any(n not in shapes for n in names):
        return None
    th = Pattern.parse(form[2])
    sizes: dict[str, Any] = dict(zip(th.axes, shapes[names[0]], strict=True))
    sizes[STACK] = len(names)
    return tuple(int(d) for d in Pattern.parse(form[1]).shape(sizes))


def _allowed(orientation: str, owner: str) -> bool:
    if orientation == "any":
        return True
    if owner == "embedding":
        return orientation in ("embedding", PARAM)
    return orientation == owner


@dataclass
class Inference:
    """What the synonym matching found."""

    options: dict[str, list[tuple[Role, tuple[str, str, str]]]]
    """Template → the (role, form) it may be."""
    held: list[str]
    unmatched: list[str]
    uncovered: list[str]


def match_synonyms(tensors: Tensors, arch: Architecture) -> Inference:
    from spec import family_of

    family = family_of(arch.config).name
    roles = ROLES.get(family, [])
    shapes = arch.theta_shapes()
    templates: dict[str, str] = {}
    for name in tensors.shapes:
        template, _ = split_layer(name)
        templates.setdefault(template, name)
    options: dict[str, list[tuple[Role, tuple[str, str, str]]]] = {}
    held, unmatched = [], []
    for template, name in templates.items():
        leaf = template.split(".{i}.", 1)[1] if ".{i}." in template else template
        found = []
        for role in roles:
            if role.layer != (".{i}." in template):
                continue
            hit = re.fullmatch(role.name, leaf) if role.layer else re.search(role.name, leaf)
            if hit is None:
                continue
            for form in role.forms:
                if _allowed(form[0], tensors.owners[name]) and _theta_shape(role, form, shapes) == tensors.shapes[name]:
                    found.append((role, form))
        if found:
            options[template] = found
        elif ".{i}." not in template and any(re.search(p, template) for p in HELD_AT_ZERO):
            held.append(template)
        else:
            unmatched.append(f"{name} {tensors.shapes[name]}")
    want = {re.sub(r"^blocks\.\d+\.", "blocks.{i}.", n) for n in shapes}
    covered = {t for opts in options.values() for role, _ in opts for t in role.theta}
    return Inference(options, held, unmatched, sorted(want - covered))


def synonym_candidates(tensors: Tensors, arch: Architecture, label: str) -> list[Layout]:
    """Every layout the synonym matching allows (Θ covered exactly once); ConfigError when a
    parameter matches nothing or a Θ entry has no parameter."""
    found = match_synonyms(tensors, arch)
    shapes = arch.theta_shapes()
    want = sorted({re.sub(r"^blocks\.\d+\.", "blocks.{i}.", n) for n in shapes})
    if found.unmatched or found.uncovered:
        tied_hint = ""
        if "W_U" in found.uncovered and tensors.aliases:
            tied_hint = "; the module ties its head to the embedding: verify against a tied config (--set tied=true)"
        elif any("W_U" == role.theta[0] for opts in found.options.values() for role, _ in opts) and "W_U" not in shapes:
            tied_hint = "; the module has its own head: verify against an untied config (--set tied=false)"
        raise ConfigError(
            f"{label} has parameters {found.unmatched[:6]} that name no Θ entry of {arch.name} by shape and synonym, and Θ entries "
            f"{found.uncovered[:6]} that no parameter holds, but expected each parameter to hold Θ entries [gptspec verify --layout auto]"
            f"{tied_hint}; write a layout (docs/verify.md, 'Layouts: Θ ↔ external names, as one table') and pass --layout FILE.py, or check --model"
        )
    templates = list(found.options)
    combos = []
    for choice in itertools.product(*(found.options[t] for t in templates)):
        covered: list[str] = [name for role, _ in choice for name in role.theta]
        if sorted(covered) == want and len(covered) == len(set(covered)):
            combos.append(choice)
        if len(combos) > MAX_CANDIDATES:
            raise ConfigError(
                f"{label}'s parameters fit more than {MAX_CANDIDATES} layouts by name and shape, but expected few enough to decide by "
                "agreement [gptspec verify --layout auto]; pass --layout naming a registered layout or a layout file"
            )
    if not combos:
        raise ConfigError(f"{label}'s parameters fit no assignment covering Θ once, but expected one [gptspec verify --layout auto]; pass --layout")
    layouts = []
    for k, choice in enumerate(combos):
        tensors_: list[Tensor | Alias] = [Tensor(t, role.theta, form[1], form[2]) for t, (role, form) in zip(templates, choice, strict=True)]
        tensors_ += [Alias(alias, of=of, reason="the module ties these parameters") for alias, of in tensors.aliases.items()]
        layouts.append(inferred_layout(f"auto-{label.rsplit(':', 1)[-1]}-{k}", arch, tuple(tensors_), tuple(found.held), label))
    return layouts


def inferred_write_config(config: Any) -> dict[str, object]:
    """An inferred layout's native config: the spec config's own fields (nothing is renamed)."""
    import dataclasses

    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.compare}


def inferred_read_config(values: Mapping[str, object], where: str) -> Any:
    raise CheckpointError(f"an inferred layout reads no config.json, but expected a layout with a config table [checkpoint {where}]; "
                          "inferred layouts describe a module's names, for gptspec verify")


def inferred_layout(name: str, arch: Architecture, tensors: tuple[Tensor | Alias, ...], held: tuple[str, ...], label: str) -> Layout:
    from spec import family_of

    return Layout(
        name=name, family=family_of(arch.config).name, description=f"inferred by gptspec verify from {label}'s parameters",
        config_keys={}, read_config=inferred_read_config, write_config=inferred_write_config, tensors=tensors,
        layers=_n_layers, buffers=tuple(Buffer(h, held_at_zero) for h in held), modules=derived_modules(tensors),
        default=arch.config,
    )


def _n_layers(config: Any) -> int:
    return int(config.n_layers)


def derived_modules(tensors: tuple[Tensor | Alias, ...]) -> tuple[tuple[str, str], ...]:
    """Module name ↔ DAG path for the modules whose output is a DAG value: the embeddings, the
    norms, the unembedding, the attention and MLP modules (parents of their projections), the
    output projections, and the blocks."""
    out: dict[str, str] = {}
    for rule in tensors:
        if not isinstance(rule, Tensor):
            continue
        external, theta = rule.external, rule.theta[0]
        sub = external.endswith((".weight", ".bias"))
        owner = external.rsplit(".", 1)[0]
        parts = theta.split(".")
        if theta in ("W_E", "W_P", "W_U"):
            out.setdefault(owner, {"W_E": "token_embedding", "W_P": "positional", "W_U": "unembed"}[theta])
        elif parts[-1] == "gamma":
            out.setdefault(owner, theta.rsplit(".", 1)[0])
        elif len(parts) == 4 and parts[2] in ("attn", "mlp"):
            module = owner.rsplit(".", 1)[0] if sub else owner
            if sub and len(rule.theta) == 1 and parts[3] in ("W_O", "W_in", "W_out", "W_gate", "W_up", "W_down"):
                out.setdefault(owner, theta)
            if ".{i}." in module:
                out.setdefault(module, f"blocks.{{i}}.{parts[2]}")
                block = module.rsplit(".", 1)[0]
                if block.endswith(".{i}"):
                    out.setdefault(block, "blocks.{i}")
    return tuple(out.items())


# -- agreement ------------------------------------------------------------------------------


def agreement(impl: Any, arch: Architecture, seed: int = 0) -> float:
    """max |target − reference| / max |reference| of the logits of one unpadded sequence, θ
    drawn at random: ~rounding for the right layout, O(1) for a wrong one."""
    from gptspec.verify.draws import ThetaDraw, draw_theta
    from gptspec.verify.oracle import ORACLE

    draw = ThetaDraw(10_000 + seed, "plain")
    theta = draw_theta(arch, draw, "float64")
    n = max(2, min(arch.dim("n_ctx"), 6))
    ids = np.random.default_rng([seed, 303]).integers(0, arch.dim("n_vocab"), size=(1, n)).astype(np.int64)
    want = ORACLE.values(arch, theta, draw.key(arch, "float64"), ids[0])["logits"]
    got = np.asarray(impl.model(arch, theta, ids, np.ones_like(ids, dtype=bool)), dtype=np.float64)[0]
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-300))


@dataclass
class Chosen:
    """The layout inference chose, and how (lines for the report)."""

    layout: Layout
    how: str
    errors: dict[str, float] = field(default_factory=dict)


SEPARATION = 10.0
"""How much better the chosen layout must agree than the next one."""


def choose(candidates: list[Layout], make_impl: Any, arch: Architecture, label: str) -> Chosen:
    """The candidate that agrees with the reference, by :func:`agreement`; with one candidate its
    agreement is reported only."""
    errors: dict[str, float] = {}
    raised: dict[str, str] = {}
    for lay in candidates:
        LAYOUTS[lay.name] = lay  # export_state_dict reads layouts by name; inferred ones are replaced on every run
        try:
            errors[lay.name] = agreement(make_impl(lay), arch)
        except Exception as error:  # noqa: BLE001 - a candidate the module cannot run is not the one
            errors[lay.name] = float("inf")
            raised[lay.name] = f"{type(error).__name__}: {error}"
    if len(candidates) == 1:  # nothing to decide: the run judges it (and reports a target that raises as a failure)
        return Chosen(candidates[0], raised.get(candidates[0].name, ""), errors)
    ranked = sorted(errors, key=lambda n: errors[n])
    best = ranked[0]
    if errors[best] == float("inf"):
        raise ConfigError(f"{label} raised with every candidate layout ({'; '.join(f'{n}: {m}' for n, m in list(raised.items())[:3])}), but expected "
                          "one to run [gptspec verify --layout auto]; pass --layout")
    if len(ranked) > 1:
        second = errors[ranked[1]]
        if not errors[best] * SEPARATION <= second:
            shown = ", ".join(f"{n} (relative error {errors[n]:.2g})" for n in ranked[:4])
            raise ConfigError(
                f"{label}'s parameters fit {len(ranked)} layouts that agree with the reference about equally: {shown}, but expected one "
                f"to agree {SEPARATION:g}× better [gptspec verify --layout auto]; pass --layout naming one (--save-layout writes it)"
            )
    return Chosen(LAYOUTS[best], "", errors)


def load_layout_file(path: str) -> Layout:
    """The ``LAYOUT`` a Python file defines (``--layout FILE.py``, as ``--save-layout`` writes it), registered under its name."""
    import importlib.util
    import os

    if not os.path.isfile(path):
        raise ConfigError(f"--layout {path}, but expected a registered layout name or an existing .py file defining LAYOUT [gptspec verify]")
    spec = importlib.util.spec_from_file_location(f"gptspec_layout_{abs(hash(os.path.abspath(path)))}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"--layout {path}, but expected a Python file [gptspec verify]")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - the user's file
        raise ConfigError(f"--layout {path} raised {type(error).__name__}: {error}, but expected a file defining LAYOUT [gptspec verify]") from error
    lay = getattr(module, "LAYOUT", None)
    if not isinstance(lay, Layout):
        raise ConfigError(f"--layout {path} defines LAYOUT={type(lay).__name__}, but expected a gptspec.checkpoint.Layout [gptspec verify]")
    LAYOUTS[lay.name] = lay
    return lay


def layout_source(lay: Layout, note: str = "") -> str:
    """Python defining ``LAYOUT``: the layout as a table to keep (``--save-layout FILE.py``)."""
    config = lay.default
    lines = [
        f'"""Layout {lay.name}: {lay.description}.',
        "",
        "Written by gptspec verify --save-layout" + (f" ({note})" if note else "") + "; pass it back with --layout THIS_FILE.py.",
        "Each Tensor: the module's parameter, the Θ entries it holds, its axes and Θ's (docs/verify.md, 'Layouts: Θ ↔ external names, as one table').",
        '"""',
        "",
        "from gptspec.checkpoint.layout import Alias, Buffer, Layout, Tensor",
        "from gptspec.verify.layouts import held_at_zero, inferred_read_config, inferred_write_config",
        f"from {type(config).__module__} import {type(config).__name__}",
        "",
        "LAYOUT = Layout(",
        f"    name={lay.name!r},",
        f"    family={lay.family!r},",
        f"    description={lay.description!r},",
        "    config_keys={},",
        "    read_config=inferred_read_config,",
        "    write_config=inferred_write_config,",
        "    layers=lambda c: c.n_layers,",
        "    tensors=(",
    ]
    for rule in lay.tensors:
        if isinstance(rule, Tensor):
            lines.append(f"        Tensor({rule.external!r}, {rule.theta!r}, {rule.external_pattern!r}, {rule.theta_pattern!r}),")
        else:
            lines.append(f"        Alias({rule.external!r}, of={rule.of!r}, reason={rule.reason!r}),")
    lines.append("    ),")
    if lay.buffers:
        lines.append("    buffers=(" + " ".join(f"Buffer({b.external!r}, held_at_zero)," for b in lay.buffers) + "),")
    if lay.modules:
        lines.append("    modules=(")
        lines += [f"        ({a!r}, {b!r})," for a, b in lay.modules]
        lines.append("    ),")
    lines.append(f"    default={config!r},")
    lines.append(")")
    return "\n".join(lines) + "\n"


__all__ = ["AUTO", "HELD_AT_ZERO", "ROLES", "Chosen", "register_source", "agreement", "choose", "layout_source", "load_layout_file", "match_synonyms",
           "module_tensors", "registered_matches", "synonym_candidates"]


def register_source(source: str) -> Layout:
    """Register the ``LAYOUT`` that Python source (:func:`layout_source`) defines: how a parent
    process learns a layout its isolated child inferred."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<inferred layout>", "exec"), namespace)  # noqa: S102 - gptspec's own generated table
    lay = namespace.get("LAYOUT")
    if not isinstance(lay, Layout):
        raise ConfigError("an inferred layout's source defines no LAYOUT, but expected one [gptspec verify]")
    LAYOUTS[lay.name] = lay
    return lay
