"""The conventions an implementer must match, each with what pins it down.

A convention is a choice where implementations of "the same" model differ — what a masked-softmax
row with no allowed key gives, which GELU, where positions start under padding — and where the
spec makes one choice. Each record names the op kinds it concerns (the docs of an architecture
show it when the architecture uses one of them), says the rule in words, and lists the tests and
theorems that fail if the code departs from it. The formulas are not restated here: the pages
show the ops' own LaTeX next to each convention. tests/test_docs.py checks that every test named
here exists and every theorem is registered, so a renamed test cannot leave a dangling claim.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Convention:
    """One convention: its anchor name, title, the op kinds it concerns, the rule, and what pins
    it down (``tests/FILE.py::test_name`` or ``theorem:NAME``)."""

    name: str
    title: str
    ops: tuple[str, ...]
    rule: str
    pinned_by: tuple[str, ...]

    def tests(self) -> list[tuple[str, str]]:
        """(file, test function) of every test that pins it."""
        return [tuple(p.split("::", 1)) for p in self.pinned_by if "::" in p]  # type: ignore[misc]

    def theorems(self) -> list[str]:
        return [p.split(":", 1)[1] for p in self.pinned_by if p.startswith("theorem:")]


CONVENTIONS: tuple[Convention, ...] = (
    Convention(
        "empty-softmax-rows", "Masked softmax: a row with no allowed key is all zeros", ("masked_softmax",),
        "A mask is a set A_t of allowed keys, not a large negative number added to scores. Entries outside A_t are "
        "exactly 0, and a row with A_t = ∅ is all zeros — PyTorch's safe softmax, ONNX opset 23. An additive −∞ "
        "gives NaN on such rows; Hugging Face's finite constant gives 1/S on every key. Rows with an allowed key "
        "agree with the finite-constant form only up to terms of order exp(c − max).",
        (
            "theorem:masked_softmax_renormalises",
            "theorem:finite_mask_constant",
            "tests/test_spec_vs_reference.py::test_masked_softmax_examples_reach_a_row_with_no_allowed_key",
            "tests/test_spec_vs_reference.py::test_reference_agrees_with_exact_definition",
        ),
    ),
    Convention(
        "gelu-forms", "GELU: the erf form and the tanh approximation are two ops, never substituted", ("gelu_erf", "gelu_tanh"),
        "GPT-2 uses the tanh approximation (Hugging Face gelu_new); gelu is the exact erf form. They differ by up to "
        "about 4.7e-4, far above float32 rounding, so an implementation using the other one fails verification. "
        "Hugging Face activation names map to one op each; every other name (gelu_fast, quick_gelu, …) is refused.",
        (
            "tests/test_verify_engine.py::test_config_mutants_are_caught",
            "tests/test_checkpoint.py::test_activation_mapping",
        ),
    ),
    Convention(
        "positions-under-padding", "Positions under padding: a token's position is its index among the real tokens",
        ("learned_positional", "sinusoidal_positional", "rotary"),
        "The spec's function takes one sequence; position t is the t-th token. A padded batch is a calling convention: "
        "a real token's position counts only the real tokens before it, so left padding changes no real row, a row "
        "does not depend on the rest of the batch, and padded rows are 0 in gptspec's fast/.",
        (
            "tests/test_fast_equivalence.py::test_invariances",
            "tests/test_fast_equivalence.py::test_whole_architectures_match_reference_on_padded_batches",
        ),
    ),
    Convention(
        "layer-norm-variance", "Layer norm: biased variance, ε inside the square root", ("layer_norm",),
        "The variance divides by d, not d − 1, and ε is added to it under the square root. ε is part of the function "
        "(GPT-2: 1e-5); a wrong ε is caught.",
        (
            "theorem:layer_norm_invariance",
            "tests/test_proofs.py::test_an_uncentred_variance_fails_the_layer_norm_theorem",
            "tests/test_verify_engine.py::test_config_mutants_are_caught",
        ),
    ),
    Convention(
        "score-scale", "Attention scores: the scale is an attribute, 1/√d_head by default", ("attention_scores",),
        "Scores are scale · Q Kᵀ with the scale an attribute of the op, because models change it (no scaling, "
        "division by the layer index); an implementation must use the architecture's scale per layer.",
        (
            "theorem:qk_circuit",
            "tests/test_proofs.py::test_a_scale_missing_from_the_scores_fails_the_qk_circuit",
            "tests/test_verify_engine.py::test_config_mutants_are_caught",
            "tests/test_graph.py::test_masks_and_scales_follow_the_config_per_layer",
        ),
    ),
    Convention(
        "rows-are-positions", "Rows are positions: y = x W + b with W ∈ ℝ^{d_in×d_out}", ("affine",),
        "A sequence is a matrix whose row t is position t and linear maps multiply on the right, so weights are "
        "(d_in, d_out): Hugging Face GPT-2's Conv1D layout exactly; a column-vector source's W is our Wᵀ.",
        ("tests/test_hf_gpt2.py::test_logits_and_every_layer_match_hugging_face",),
    ),
    Convention(
        "head-order", "Heads are concatenated in order: column h·d_head + k is head h's column k", ("concat_heads",),
        "Concatenating the heads and applying W_O equals the sum over heads of head h times its slice W_O[h]; the "
        "fused QKV layout of a checkpoint must split heads in this order.",
        (
            "theorem:heads_concat_then_project",
            "tests/test_checkpoint.py::test_hf_layout_maps_to_theta_exactly",
        ),
    ),
    Convention(
        "token-ids", "Token ids: one-hot rows; an id outside [0, n_vocab) and the empty sequence", ("one_hot", "token_embedding"),
        "Row t of X is the basis vector of id t, and X W_E gathers rows of W_E. An id outside [0, n_vocab) is refused, "
        "naming the position; the empty sequence is defined and gives 0 rows of logits.",
        (
            "theorem:one_hot_embedding_is_gather",
            "tests/test_reference.py::test_out_of_range_token_names_position_and_id",
            "tests/test_reference.py::test_empty_sequence_gives_zero_rows_of_logits",
        ),
    ),
)
"""Every convention, in the order the docs show them."""


def applicable_conventions(kinds: set[str]) -> list[Convention]:
    """The conventions that concern an op kind in ``kinds``."""
    return [c for c in CONVENTIONS if set(c.ops) & kinds]
