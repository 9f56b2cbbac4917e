"""The mutation set: a real Hugging Face GPT-2 altered at run time, one realistic bug at a time
(attention, masking, scaling, head layout, norm, activation, position ids, residual wiring,
dropout at inference, reduced precision in one op, the KV cache). Every mutant must fail
``gptspec verify`` with the right localisation (DAG path and op kind, by intermediates), and
the unaltered model must pass.

Each mutant is a factory ``f(config) -> module`` — what a user would pass — so shrinking can
rebuild it at smaller sizes. Attention mutants register their attention function under their
own name in transformers' attention registry (never replacing a built-in one), so nothing
leaks into other tests.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import math
import types
from collections.abc import Callable
from typing import Any

import pytest
import torch
import transformers
from transformers import AttentionInterface, GPT2Config, GPT2LMHeadModel
from transformers.activations import ACT2FN
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from gptspec.verify import verify_target

transformers.utils.logging.set_verbosity_error()

TINY = "spec.architectures.gpt:GPTConfig"


def hf(config: Any, attn: str = "eager") -> GPT2LMHeadModel:
    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    return GPT2LMHeadModel(GPT2Config(**kwargs, attn_implementation=attn))


def attention(name: str, scores: Callable[..., torch.Tensor] | None = None, weights: Callable[..., torch.Tensor] | None = None,
              split: Callable[[torch.Tensor], torch.Tensor] | None = None) -> str:
    """Register an eager-style attention called ``name`` whose score, weight or head-split step
    is replaced; return the name (the attn_implementation to build with)."""

    def forward(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None,
                scaling: float | None = None, dropout: float = 0.0, **_: Any) -> tuple[torch.Tensor, None]:
        if split is not None:
            query, key, value = split(query), split(key), split(value)
        scale = query.size(-1) ** -0.5 if scaling is None else scaling
        s = torch.matmul(query, key.transpose(-1, -2)) * scale if scores is None else scores(query, key, scale)
        if weights is None:
            if attention_mask is not None:
                s = s + attention_mask
            w = torch.softmax(s, dim=-1)
        else:
            w = weights(s, attention_mask)
        out = torch.matmul(w.to(value.dtype), value)
        return out.transpose(1, 2), None

    AttentionInterface.register(name, forward)
    AttentionMaskInterface.register(name, eager_mask)
    return name


def softmax_without_max(s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """exp of the unshifted scores (overflows once a score passes 88.7 in float32); rows with
    no allowed key are guarded, so only the overflow is wrong."""
    e = torch.exp(s) * (1.0 if mask is None else (mask == 0).to(s.dtype))
    return e / e.sum(-1, keepdim=True).clamp(min=1e-30)


def causal(s: torch.Tensor, ahead: int = 0) -> torch.Tensor:
    """Key s allowed for query t when s ≤ t + ahead (queries are the last positions of the keys)."""
    q, k = s.shape[-2], s.shape[-1]
    return torch.arange(k)[None, :] <= (torch.arange(k - q, k)[:, None] + ahead)


def leaky_causal(s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Position t also sees t + 1 (an off-by-one causal mask)."""
    allowed = causal(s, ahead=1)
    if mask is not None:  # keep the key padding the mask carries
        allowed = allowed & (mask[:, :, -1:, :] == 0)
    return torch.softmax(s.masked_fill(~allowed, torch.finfo(s.dtype).min), dim=-1)


def causal_only(s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Causal, but the attention_mask's padding is ignored."""
    return torch.softmax(s.masked_fill(~causal(s), torch.finfo(s.dtype).min), dim=-1)


def half_softmax(s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The softmax computed in float16 inside a float32 model."""
    if mask is not None:
        s = s + mask
    return torch.softmax(s.to(torch.float16).clamp(min=-6e4), dim=-1).to(s.dtype)


def heads_interleaved(x: torch.Tensor) -> torch.Tensor:
    """Heads split as (d_head, heads) instead of (heads, d_head): column c goes to head c % H."""
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D).reshape(B, T, D, H).permute(0, 3, 1, 2)


def unit_scale(query: torch.Tensor, key: torch.Tensor, scale: float) -> torch.Tensor:
    """Scores divided by d_head instead of √d_head."""
    return torch.matmul(query, key.transpose(-1, -2)) / query.size(-1)


def attention_mutant(**change: Any) -> Callable[[Any], GPT2LMHeadModel]:
    name = "gptspec_mutant_" + "_".join(f"{k}_{getattr(v, '__name__', v)}" for k, v in change.items())
    registered = attention(name, **change)

    def factory(config: Any) -> GPT2LMHeadModel:
        return hf(config, registered)

    return factory


def scale_by_d_head(config: Any) -> GPT2LMHeadModel:
    return hf(config, attention("gptspec_mutant_unit_scale", scores=unit_scale))


def no_max_subtraction(config: Any) -> GPT2LMHeadModel:
    return hf(config, attention("gptspec_mutant_no_max", weights=softmax_without_max))


def leaky_mask(config: Any) -> GPT2LMHeadModel:
    return hf(config, attention("gptspec_mutant_leaky", weights=leaky_causal))


def padding_ignored(config: Any) -> GPT2LMHeadModel:
    return hf(config, attention("gptspec_mutant_pad", weights=causal_only))


def softmax_in_float16(config: Any) -> GPT2LMHeadModel:
    return hf(config, attention("gptspec_mutant_half", weights=half_softmax))


def heads_split_wrong(config: Any) -> GPT2LMHeadModel:
    return hf(config, attention("gptspec_mutant_heads", split=heads_interleaved))


def norm_eps(config: Any) -> GPT2LMHeadModel:
    model = hf(config)
    if len(model.transformer.h) > 1:
        model.transformer.h[1].ln_2.eps = 1e-2
    return model


class RMSNorm(torch.nn.Module):
    """A layer norm that forgets to subtract the mean (x / rms · γ + β)."""

    def __init__(self, ln: torch.nn.LayerNorm) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = ln.weight, ln.bias, ln.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.weight + self.bias


def norm_without_mean(config: Any) -> GPT2LMHeadModel:
    model = hf(config)
    model.transformer.ln_f = RMSNorm(model.transformer.ln_f)
    return model


def exact_gelu(config: Any) -> GPT2LMHeadModel:
    model = hf(config)
    for block in model.transformer.h:
        block.mlp.act = ACT2FN["gelu"]
    return model


def position_ids_ignored(config: Any) -> GPT2LMHeadModel:
    """Positions counted from the first slot, padding included (position_ids dropped)."""
    model = hf(config)
    forward = model.transformer.forward

    def without(*args: Any, position_ids: Any = None, **kwargs: Any) -> Any:
        return forward(*args, **kwargs)

    model.transformer.forward = without
    return model


def no_attention_residual(config: Any) -> GPT2LMHeadModel:
    model = hf(config)
    for block in model.transformer.h:
        def forward(self: Any, hidden_states: torch.Tensor, cache: Any = None, attention_mask: Any = None, *args: Any, **kwargs: Any) -> torch.Tensor:
            a, _ = self.attn(self.ln_1(hidden_states), cache=cache, attention_mask=attention_mask,
                             **{k: v for k, v in kwargs.items() if k in ("use_cache", "position_ids")})
            h = a  # the residual hidden_states + a is missing
            return h + self.mlp(self.ln_2(h))

        block.forward = types.MethodType(forward, block)
    return model


class AlwaysDropout(torch.nn.Module):
    """Dropout that ignores eval mode (F.dropout(training=True))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.dropout(x, 0.1, training=True)


def dropout_at_inference(config: Any) -> GPT2LMHeadModel:
    model = hf(config)
    model.transformer.h[0].attn.resid_dropout = AlwaysDropout()
    return model


class ScaledEmbedding(torch.nn.Embedding):
    """Token embedding multiplied by √d_model (a Vaswani-style scale GPT-2 does not have)."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids) * math.sqrt(self.embedding_dim)


def scaled_embedding(config: Any) -> GPT2LMHeadModel:
    model = hf(config)
    old = model.transformer.wte
    new = ScaledEmbedding(old.num_embeddings, old.embedding_dim)
    new.weight = old.weight  # still tied to lm_head
    model.transformer.wte = new
    return model


def final_norm_missing(config: Any) -> GPT2LMHeadModel:
    model = hf(config)
    model.transformer.ln_f = torch.nn.Identity()
    model.transformer.ln_f.register_parameter("weight", torch.nn.Parameter(torch.ones(config["n_embd"])))
    model.transformer.ln_f.register_parameter("bias", torch.nn.Parameter(torch.zeros(config["n_embd"])))
    return model


def cache_positions_restart(config: Any) -> GPT2LMHeadModel:
    """Decoding with a cache counts positions without the padding correction (arange past
    the cache), so left-padded rows decode at shifted positions; the full forward is right."""
    model = hf(config)
    forward = model.transformer.forward

    def shifted(*args: Any, position_ids: Any = None, cache: Any = None, **kwargs: Any) -> Any:
        if cache is not None and cache.get_seq_length() > 0:
            position_ids = None
        return forward(*args, position_ids=position_ids, cache=cache, **kwargs)

    model.transformer.forward = shifted
    return model


def no_mlp_residual(config: Any) -> GPT2LMHeadModel:
    model = hf(config)
    for block in model.transformer.h:
        def forward(self: Any, hidden_states: torch.Tensor, cache: Any = None, attention_mask: Any = None, *args: Any, **kwargs: Any) -> torch.Tensor:
            a, _ = self.attn(self.ln_1(hidden_states), cache=cache, attention_mask=attention_mask,
                             **{k: v for k, v in kwargs.items() if k in ("use_cache", "position_ids")})
            h = hidden_states + a
            return self.mlp(self.ln_2(h))  # the residual h + … is missing

        block.forward = types.MethodType(forward, block)
    return model


def mask_after_softmax(s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over every key, then the masked weights zeroed (rows no longer sum to 1)."""
    w = torch.softmax(s, dim=-1)
    return w if mask is None else w * (mask == 0).to(w.dtype)


def masked_after_softmax(config: Any) -> GPT2LMHeadModel:
    return hf(config, attention("gptspec_mutant_after", weights=mask_after_softmax))


def gelu_fast(config: Any) -> GPT2LMHeadModel:
    """gelu_fast: the tanh GELU with √(2/π) truncated to 0.7978845608 — 1e-11 off, float64 sees it."""
    model = hf(config)
    for block in model.transformer.h:
        block.mlp.act = ACT2FN["gelu_fast"]
    return model


MUTANTS: dict[str, tuple[Callable[[Any], Any], str, str, str]] = {
    # name: (factory, component that must fail, localisation path prefix, kind)
    "attention scale 1/d_head": (scale_by_d_head, "model", "blocks.0.attn", "multi_head_attention"),
    "softmax without max subtraction": (no_max_subtraction, "model", "blocks.0.attn", "multi_head_attention"),
    "causal mask off by one": (leaky_mask, "model", "blocks.0.attn", "multi_head_attention"),
    "key padding ignored": (padding_ignored, "model", "blocks.0.attn", "multi_head_attention"),
    "softmax in float16": (softmax_in_float16, "model", "blocks.0.attn", "multi_head_attention"),
    "heads split (d_head, heads)": (heads_split_wrong, "model", "blocks.0.attn", "multi_head_attention"),
    "layer norm eps 1e-2 (blocks.1.ln_2)": (norm_eps, "model", "blocks.1.ln_2", "layer_norm"),
    "final norm without mean": (norm_without_mean, "model", "ln_f", "layer_norm"),
    "exact GELU for tanh GELU": (exact_gelu, "model", "blocks.0.mlp.gelu_tanh", "gelu_tanh"),
    "position ids ignored": (position_ids_ignored, "model", "positional", "learned_positional"),
    "attention residual missing": (no_attention_residual, "model", "blocks.0.add_attn", "add"),
    "dropout at inference": (dropout_at_inference, "model", "blocks.0.attn", "multi_head_attention"),
    "embedding scaled by √d": (scaled_embedding, "model", "token_embedding", "token_embedding"),
    "final norm missing": (final_norm_missing, "model", "ln_f", "layer_norm"),
    "cache positions not padding-aware": (cache_positions_restart, "decode", "positional", "learned_positional"),
    "MLP residual missing": (no_mlp_residual, "model", "blocks.0.add_mlp", "add"),
    "mask applied after the softmax": (masked_after_softmax, "model", "blocks.0.attn", "multi_head_attention"),
    "gelu_fast's truncated constant (float64)": (gelu_fast, "model", "blocks.0.mlp.gelu_tanh", "gelu_tanh"),
}
DTYPE = {"gelu_fast's truncated constant (float64)": "float64"}


@pytest.mark.parametrize("name", MUTANTS)
def test_every_mutant_fails_with_the_right_localisation(name: str) -> None:
    factory, component, path, kind = MUTANTS[name]
    report = verify_target(factory, layout="hf-gpt2", examples=4, components=(component,), shrink=False, dtype=DTYPE.get(name))
    (result,) = report.results
    assert result.status == "failed", f"{name}: {result.status}, {result.detail} {result.error}"
    assert report.exit_code == 1
    loc = result.localisation
    assert loc is not None and loc["method"] == "intermediates", f"{name}: {loc}"
    assert loc["path"].startswith(path) and loc["kind"] == kind, f"{name}: localised at {loc}, but expected {path} ({kind})"
