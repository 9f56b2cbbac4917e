"""Verify the code people write, as it is (docs/verify.md, "Verify a codebase you did not write").

The fixtures under tests/fixtures/codebases/ follow public codebases' conventions (nanoGPT,
Meta's reference Llama, TransformerLens); each is verified with no flags — config, layout and
calling convention inferred — to the right verdict, a fault injected into each is caught, and
identify names the variant nanoGPT computes.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gptspec.checkpoint import LAYOUTS, export_state_dict, import_state_dict, layout
from gptspec.checkpoint.meta_llama import meta_ffn_width, solve_meta_ffn
from gptspec.models import load_object
from gptspec.verify import verify_target
from gptspec.verify.calling import detect
from gptspec.verify.identify import variants
from gptspec.verify.infer import build_own
from gptspec.verify.layouts import agreement, choose, load_layout_file, module_tensors, registered_matches
from gptspec.verify.torch_target import TorchTarget, aligned
from spec import build
from spec.errors import ConfigError
from spec.theta import random_theta

FIXTURES = Path(__file__).parent / "fixtures" / "codebases"
NANOGPT = f"{FIXTURES / 'nanogpt_style' / 'model.py'}:GPT"
META = f"{FIXTURES / 'meta_llama_style' / 'model.py'}:Transformer"
LENS = f"{FIXTURES / 'lens_style' / 'model.py'}:HookedTransformer"

QUICK: dict[str, Any] = {"examples": 3, "generation_examples": 1, "isolate": False}


def load_class(target: str) -> type:
    found = load_object(target, "target")
    assert isinstance(found, type)
    return found


def statuses(report: Any) -> dict[str, str]:
    return {r.component: r.status for r in report.results}


# -- the fixtures, with no flags -------------------------------------------------------------


def test_nanogpt_computes_gpt2_with_exact_gelu_and_identify_says_so() -> None:
    report = verify_target(NANOGPT, shrink=False, **QUICK)
    assert report.layout == "nanogpt" and report.exit_code == 1
    got = statuses(report)
    assert got["model: padded batches"] == "not run"  # no mask: never a failure, never a pass
    assert got["model: unpadded batches (the target takes no attention mask)"] == "failed"
    assert got["model: greedy generation"] == "passed"  # its own sampling generate is replaced by argmax of its logits
    failed = next(r for r in report.results if r.status == "failed")
    assert failed.localisation is not None and failed.localisation["path"] == "blocks.0.mlp.gelu_tanh", failed.localisation
    assert report.identified is not None
    assert report.identified["changes"] == {"activation": "gelu_erf"} and report.identified["passed"] is True
    assert report.identified["flags"] == "--set activation=gelu_erf"
    notes = " ".join(report.notes)
    assert "GPTConfig(block_size=16" in notes and "ids only" in notes and "argmax of its logits" in notes
    assert "last position's logits only" in notes  # judged at every position by feeding prefixes, and said so
    report = verify_target(NANOGPT, sets=("activation=gelu_erf",), **QUICK)
    assert report.exit_code == 0 and report.identified is None, statuses(report)


def test_meta_llama_passes_with_its_own_cache_for_decoding() -> None:
    report = verify_target(META, **QUICK)
    assert report.layout == "meta-llama" and report.exit_code == 0, statuses(report)
    assert statuses(report)["model: incremental decoding"] == "passed"
    assert report.function["rope_pairing"] == "interleaved"
    assert any("ModelArgs(" in n and "multiple_of=16" in n for n in report.notes), report.notes


def test_a_lens_style_model_passes_through_an_inferred_layout_in_its_own_process() -> None:
    report = verify_target(LENS, examples=3, generation_examples=1)  # isolated: the child infers, the parent registers it
    assert report.layout.startswith("auto-") and report.exit_code == 0, (report.layout, statuses(report))
    assert statuses(report)["model: padded batches"] == "passed"  # it takes attention_mask by keyword
    notes = " ".join(report.notes)
    assert "unembed.b_U" in notes and "tied=False" in notes, notes


BUGS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "nanogpt: no residual around attention": (NANOGPT, "x = x + self.attn(self.ln_1(x))", "x = self.attn(self.ln_1(x))", {}),
    "meta: softmax over the query axis": (META, "F.softmax(scores.float(), dim=-1)", "F.softmax(scores.float(), dim=-2)", {}),
    "meta: rotary pairs read as halves": (META, "x.float().reshape(*x.shape[:-1], x.shape[-1] // 2, 2)",
                                          "x.float().reshape(*x.shape[:-1], 2, x.shape[-1] // 2).transpose(-1, -2).contiguous()", {}),
    "lens: left padding shifts positions": (LENS, "positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)",
                                             "positions = torch.arange(tokens.shape[1], device=tokens.device)[None].expand(tokens.shape)", {}),
}


@pytest.mark.parametrize("name", list(BUGS))
def test_a_bug_injected_into_each_codebase_is_caught(name: str, tmp_path: Path) -> None:
    target, old, new, options = BUGS[name]
    path, cls = target.rsplit(":", 1)
    source = Path(path).read_text()
    assert source.count(old) == 1, f"the fixture changed: {old!r}"
    broken = tmp_path / "model.py"
    broken.write_text(source.replace(old, new))
    report = verify_target(f"{broken}:{cls}", components=("model",), shrink=False, localise=False, identify=False, **QUICK, **options)
    assert report.exit_code == 1, statuses(report)


# -- config inference ----------------------------------------------------------------------


def test_config_inference_maps_synonyms_and_solves_the_ffn_rule() -> None:
    config = layout("meta-llama").default
    module, built = build_own(load_class(META), config)  # type: ignore[misc]
    assert built.how.endswith("(annotation)") and built.config_type == "ModelArgs"
    values = {k: v for k, (v, _) in built.values.items()}
    want = {"dim": 16, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 61, "max_seq_len": 16, "norm_eps": 1e-5, "max_batch_size": 8}
    assert {k: values.get(k) for k in want} == want
    assert module.layers[0].feed_forward.w1.weight.shape == (config.d_mlp, config.d_model)
    for dim in (16, 24, 4096):
        for d_mlp in (8, 48, 96, 11008, 14336):
            multiple_of, multiplier = solve_meta_ffn(dim, d_mlp)
            assert meta_ffn_width(dim, multiple_of, multiplier) == d_mlp, (dim, d_mlp)


class NeedsTokenizer(torch.nn.Module):
    def __init__(self, tokenizer_path: str, n_layer: int = 2) -> None:
        super().__init__()


@dataclasses.dataclass
class OddConfig:
    n_embd: int
    n_layer: int
    n_head: int
    tokenizer: str


class NeedsOddConfig(torch.nn.Module):
    def __init__(self, config: OddConfig) -> None:
        super().__init__()


def test_a_class_that_cannot_be_built_says_what_was_tried_and_suggests_a_factory() -> None:
    config = layout("hf-gpt2").default
    assert build_own(NeedsTokenizer, config) is None  # no config type: the layout's native config is the fallback
    with pytest.raises(ConfigError, match=r"OddConfig requires \['tokenizer'\].*factory f\(config\) -> module"):
        build_own(NeedsOddConfig, config)


# -- layout inference ------------------------------------------------------------------------


def _nanogpt(config: Any) -> Any:
    module, _ = build_own(load_class(NANOGPT), config)  # type: ignore[misc]
    return module


def test_the_square_c_proj_read_transposed_is_caught_by_agreement() -> None:
    from gptspec.checkpoint.layout import Tensor

    lay = layout("nanogpt")
    arch = build(dataclasses.replace(lay.default, activation="gelu_erf"))
    module = _nanogpt(arch.config)
    assert registered_matches(module_tensors(module), arch) == [lay]
    wrong = dataclasses.replace(lay, name="auto-test-transposed", tensors=tuple(
        Tensor(t.external, t.theta, "(h e) d", t.theta_pattern) if isinstance(t, Tensor) and t.external == "h.{i}.attn.c_proj.weight" else t
        for t in lay.tensors))
    chosen = choose([wrong, lay], lambda candidate: TorchTarget(candidate, "nanogpt", instance=module), arch, "nanogpt")
    assert chosen.layout is lay
    assert chosen.errors["nanogpt"] < 1e-5 < 1e-2 < chosen.errors["auto-test-transposed"], chosen.errors
    twin = dataclasses.replace(lay, name="auto-test-twin")
    with pytest.raises(ConfigError, match="agree with the reference about equally"):
        choose([lay, twin], lambda candidate: TorchTarget(candidate, "nanogpt", instance=module), arch, "nanogpt")


class FusedPerHead(torch.nn.Module):
    """A litgpt-style (older) fused QKV: rows grouped per head, [q_h, k_h, v_h] for each head —
    the same shape as [Q | K | V], told apart by agreement only."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        d, h, v, n = config.n_embd, config.n_head, config.vocab_size, config.block_size
        self.h, self.e = h, d // h
        self.wte, self.wpe = torch.nn.Embedding(v, d), torch.nn.Embedding(n, d)
        self.blocks = torch.nn.ModuleList()
        for _ in range(config.n_layer):
            block = torch.nn.Module()
            block.norm_1, block.norm_2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
            block.attn = torch.nn.Module()
            block.attn.attn, block.attn.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
            block.mlp = torch.nn.Module()
            block.mlp.fc, block.mlp.proj = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)
            self.blocks.append(block)
        self.ln_f, self.lm_head = torch.nn.LayerNorm(d), torch.nn.Linear(d, v, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        block: Any
        for block in self.blocks:
            qkv = block.attn.attn(block.norm_1(x)).view(B, T, self.h, 3, self.e)
            q, k, v = (qkv[:, :, :, j].transpose(1, 2) for j in range(3))
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, -1)
            x = x + block.attn.proj(y)
            x = x + block.mlp.proj(torch.nn.functional.gelu(block.mlp.fc(block.norm_2(x)), approximate="tanh"))
        out: torch.Tensor = self.lm_head(self.ln_f(x))
        return out


@dataclasses.dataclass
class FusedConfig:
    block_size: int = 8
    vocab_size: int = 11
    n_layer: int = 1
    n_head: int = 2
    n_embd: int = 8


FusedPerHead.__init__.__annotations__["config"] = FusedConfig


def test_a_per_head_fused_qkv_is_told_from_stacked_q_k_v_by_agreement(tmp_path: Path) -> None:
    report = verify_target(FusedPerHead, sets=("tied=false",), components=("model",), identify=False, **QUICK)
    assert report.layout.startswith("auto-") and report.exit_code == 0, (report.notes, statuses(report))
    lay = LAYOUTS[report.layout]
    qkv = next(t for t in lay.tensors if t.external.endswith("attn.attn.weight"))
    assert qkv.external_pattern == "(h k e) d"  # type: ignore[union-attr]
    assert any("4 candidate(s)" in n for n in report.notes), report.notes  # weight and bias each stacked or per head


def test_an_inferred_layout_is_saved_and_passed_back(tmp_path: Path) -> None:
    from gptspec.cli import main

    saved = tmp_path / "lens_layout.py"
    code = main(["verify", LENS, "--in-process", "--components", "model", "--examples", "2", "--quiet", "--save-layout", str(saved)])
    assert code == 0 and "LAYOUT = Layout(" in saved.read_text()
    lay = load_layout_file(str(saved))
    assert any(t.external == "blocks.{i}.attn.W_Q" and t.external_pattern == "h d e" for t in lay.tensors)  # type: ignore[union-attr]
    code = main(["verify", LENS, "--in-process", "--components", "model", "--examples", "2", "--quiet", "--layout", str(saved), "--set", "tied=false"])
    assert code == 0


@pytest.mark.parametrize("name", ["nanogpt", "meta-llama"])
def test_the_new_layouts_round_trip_bit_exactly(name: str) -> None:
    lay = layout(name)
    arch = build(lay.default)
    theta = random_theta(arch, 0)
    state = export_state_dict(arch, theta, name)
    _, back = import_state_dict(lay.default, state, name)
    assert all(np.array_equal(back[k], theta[k]) for k in theta)
    read = lay.read_config(lay.write_config(lay.default), "test")
    # nanoGPT's config has no activation: reading one gives what its code computes (exact-erf GELU)
    assert read == (dataclasses.replace(lay.default, activation="gelu_erf") if name == "nanogpt" else lay.default)


# -- calling conventions and hooks --------------------------------------------------------


def test_the_mask_goes_only_to_a_parameter_named_for_it() -> None:
    nano = _nanogpt(layout("nanogpt").default)
    assert detect(nano).mask is None and not detect(nano).takes_mask  # forward(idx, targets=None): never targets

    class BareMask(torch.nn.Module):
        def forward(self, x: Any, mask: Any = None) -> Any: ...

    class Keyword(torch.nn.Module):
        def forward(self, tokens: Any, attention_mask: Any = None) -> Any: ...

    class Needs(torch.nn.Module):
        def forward(self, tokens: Any, labels: Any) -> Any: ...

    assert detect(BareMask()).mask is None  # a bare `mask` may be an additive causal mask: not given a padding mask
    assert detect(Keyword()).mask == "attention_mask"
    with pytest.raises(ConfigError, match=r"requires \['labels'\]"):
        detect(Needs())


def test_hooked_values_without_a_batch_axis_are_aligned() -> None:
    B, T, d = 3, 5, 4
    per_position = np.arange(T * d, dtype=float).reshape(T, d)
    assert aligned(per_position, B, T).shape == (B, T, d)  # nanoGPT's wpe(arange(T))
    assert aligned(per_position[None], B, T).shape == (B, T, d)
    assert aligned(np.zeros((1, B, T, d)), B, T).shape == (B, T, d)
    assert aligned(np.zeros((7, 2)), B, T).shape == (7, 2)  # anything else: left as it is


def test_identify_searches_only_variants_with_the_same_parameters() -> None:
    arch = build(layout("nanogpt").default)
    found = variants(arch.config, arch.theta_shapes(), "blocks.0.mlp gelu_tanh")
    assert found[0] == {"activation": "gelu_erf"}  # the localisation orders the search
    shapes = arch.theta_shapes()
    singles = [v for v in found if len(v) == 1]
    assert all(build(arch.config.replace(**v)).theta_shapes() == shapes for v in singles)  # the same θ fits every variant
    assert {"activation": "relu"} in found and {"eps": 1e-6} in found


def test_agreement_is_rounding_for_the_right_layout() -> None:
    lay = layout("meta-llama")
    arch = build(lay.default)
    module, _ = build_own(load_class(META), arch.config)  # type: ignore[misc]
    assert agreement(TorchTarget(lay, "meta", instance=module), arch) < 1e-5
    assert re.search("interleaved", lay.description)


# -- localisation without looking inside ----------------------------------------------------

STREAM_BUGS: dict[str, tuple[str, list[tuple[str, str]], str]] = {
    "nanogpt post-LN": (NANOGPT, [("x = x + self.attn(self.ln_1(x))", "x = self.ln_1(x + self.attn(x))"),
                                  ("x = x + self.mlp(self.ln_2(x))", "x = self.ln_2(x + self.mlp(x))")], "blocks.*.ln_1+blocks.*.ln_2"),
    "nanogpt missing residual": (NANOGPT, [("x = x + self.mlp(self.ln_2(x))", "x = self.mlp(self.ln_2(x))")], "blocks.*.add_attn+blocks.*.add_mlp"),
    "nanogpt eps": (NANOGPT, [("self.weight, self.bias, 1e-5)", "self.weight, self.bias, 1e-1)")], "ln_f"),
    "nanogpt variance divisor": (NANOGPT, [("return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)",
                                            "return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=True) + 1e-5) "
                                            "* self.weight + self.bias")], "ln_f+token_embedding"),
    "nanogpt gamma and beta swapped": (NANOGPT, [("self.weight.shape, self.weight, self.bias, 1e-5)", "self.weight.shape, self.bias, self.weight, 1e-5)")],
                                       "ln_f+unembed"),
    "nanogpt no final norm": (NANOGPT, [("x = self.transformer.ln_f(x)", "x = x")], "ln_f+unembed"),
    "meta missing residual": (META, [("return h + self.feed_forward(self.ffn_norm(h))", "return self.feed_forward(self.ffn_norm(h))")],
                              "blocks.*.add_attn+blocks.*.add_mlp"),
    "meta eps": (META, [("torch.mean(x32 * x32, dim=-1, keepdim=True) + self.eps", "torch.mean(x32 * x32, dim=-1, keepdim=True) + 1e-1")], "norm_f"),
    "meta no final norm": (META, [("h = self.norm(h)", "h = h")], "norm_f+unembed"),
}


@pytest.mark.parametrize("name", list(STREAM_BUGS))
def test_black_box_probes_name_at_most_two_nodes_for_norm_and_residual_faults(name: str, tmp_path: Path) -> None:
    from gptspec.verify.cases import Batch, Case, Context, run_model
    from gptspec.verify.draws import ThetaDraw
    from gptspec.verify.localise import by_probes

    target, subs, want = STREAM_BUGS[name]
    path, cls = target.rsplit(":", 1)
    source = Path(path).read_text()
    for old, new in subs:
        assert source.count(old) == 1, f"the fixture changed: {old!r}"
        source = source.replace(old, new)
    (tmp_path / "model.py").write_text(source)
    lay = layout("nanogpt" if target == NANOGPT else "meta-llama")
    arch = build(dataclasses.replace(lay.default, activation="gelu_erf") if target == NANOGPT else lay.default)
    module, _ = build_own(load_class(f"{tmp_path / 'model.py'}:{cls}"), arch.config)  # type: ignore[misc]
    impl = TorchTarget(lay, name, instance=module, dtype="float32")
    ctx = Context(arch, "float32")
    case = Case(arch.config, ThetaDraw(0, "plain"), Batch(((1, 2, 3, 4, 5, 6),), (False,), 6))
    assert not run_model(impl, ctx, case).passed
    found = by_probes(impl, ctx, case, run_model)  # a black box: no intermediates
    assert found.path == want, found.describe()


def test_a_target_that_raises_on_some_inputs_fails_with_the_smallest_that_raises(tmp_path: Path) -> None:
    path, cls = NANOGPT.rsplit(":", 1)
    source = Path(path).read_text()
    old = "pos = torch.arange(0, t, dtype=torch.long, device=device)"
    assert source.count(old) == 1
    (tmp_path / "model.py").write_text(source.replace(old, "pos = torch.arange(1, t + 1, dtype=torch.long, device=device)"))
    report = verify_target(f"{tmp_path / 'model.py'}:{cls}", sets=("activation=gelu_erf",), components=("model",), identify=False, **QUICK)
    result = next(r for r in report.results if r.status != "not run")
    assert report.exit_code == 1 and result.status == "failed", (result.status, result.error)  # a failure, not "could not run"
    assert "raised IndexError" in result.detail and "runs on other inputs" in result.detail
    assert result.example is not None and "T=16" in result.example  # it raises only at T = n_ctx: the smallest raising input
    assert result.localisation is not None and result.localisation["method"] == "exception"
    assert result.localisation["path"] == "positional", result.localisation  # it raised inside wpe, the hooked module of that node


def test_a_shrunk_localisation_is_checked_on_the_original() -> None:
    from gptspec.verify.localise import Localisation
    from gptspec.verify.session import Runner

    mlp = Localisation("blocks.0.mlp.gelu_tanh", "gelu_tanh", "intermediates", "its output differs")
    ln_f = Localisation("ln_f", "layer_norm", "intermediates", "its output differs")
    assert Runner.steady(mlp, mlp) is mlp
    kept = Runner.steady(ln_f, mlp)  # a tiny model's rounding moved the blame: the original's is kept, the shrunk one's reported
    assert kept.path == "blocks.0.mlp.gelu_tanh" and "on the shrunk counterexample it localises to ln_f" in kept.detail
    region = Localisation("blocks.0.ln_2+blocks.0.mlp", "layer_norm+mlp", "ablation", "this MLP sublayer")
    finer = Runner.steady(mlp, region)  # consistent with the original's region, and finer: kept
    assert finer.path == "blocks.0.mlp.gelu_tanh" and "which contains it" in finer.detail


def test_the_synonym_table_in_the_docs_is_the_code() -> None:
    from gptspec.verify.infer import DROPOUT, SYNONYMS

    text = (Path(__file__).parent.parent / "docs" / "verify.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[2] for line in text.splitlines() if line.startswith("| ") and line.count("|") == 3}
    for quantity, names in SYNONYMS.items():
        assert quantity in rows, quantity
        shown = [n.strip() for n in rows[quantity].split(";")[0].split("(")[0].split(",")]
        assert shown == list(names), (quantity, shown)
    assert all(name in text for name in DROPOUT[:3])


def test_the_json_report_carries_what_identify_found() -> None:
    import json

    from gptspec.verify.report import FORMATS

    report = verify_target(NANOGPT, shrink=False, localise=False, components=("model",), **QUICK)
    found = json.loads(FORMATS["json"](report))["identified"]
    assert found["changes"] == {"activation": "gelu_erf"} and found["passed"] is True and found["variants_screened"] >= 1


class MinGPTStyle(torch.nn.Module):
    """minGPT's convention: ``get_default_config()`` gives an object whose attributes are set, with
    a ``model_type`` that must be None when the sizes are given."""

    @staticmethod
    def get_default_config() -> Any:
        import types

        return types.SimpleNamespace(model_type="gpt", n_layer=None, n_head=None, n_embd=None, vocab_size=None, block_size=None,
                                     embd_pdrop=0.1, resid_pdrop=0.1, attn_pdrop=0.1)

    def __init__(self, config: Any) -> None:
        super().__init__()
        assert config.model_type is None and config.n_layer is not None
        self.config = config


class KeywordStyle(torch.nn.Module):
    def __init__(self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_seq_len: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.sizes = (vocab_size, d_model, n_layers, n_heads, max_seq_len, dropout)


def test_config_inference_reads_get_default_config_and_keyword_constructors() -> None:
    config = layout("hf-gpt2").default
    module, built = build_own(MinGPTStyle, config)  # type: ignore[misc]
    c = module.config
    assert (c.n_layer, c.n_head, c.n_embd, c.vocab_size, c.block_size, c.embd_pdrop) == (2, 2, 16, 61, 16, 0.0)
    assert built.how == "built from get_default_config()"
    module, built = build_own(KeywordStyle, config)  # type: ignore[misc]
    assert module.sizes == (61, 16, 2, 2, 16, 0.0) and built.how == "built from keyword arguments"
