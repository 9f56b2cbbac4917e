"""The ``config.json`` keys every Hugging Face model's config writes (``PretrainedConfig``) that do
not change the logits — one table, which each Hugging Face layout spreads into its own
(gptspec/checkpoint/hf_gpt2.py, hf_llama.py, hf_marian.py) and may override with a more specific
reason."""

from __future__ import annotations

from gptspec.checkpoint.layout import ConfigKey, ignore

HF_PRETRAINED_KEYS: dict[str, ConfigKey] = {
    **ignore(
        "a special token's id: tokenisation and generation, not the logits",
        "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
    ),
    **ignore("the key/value cache: the same logits, computed incrementally", "use_cache"),
    **ignore(
        "labels of a classification head (…ForSequenceClassification), not the language model",
        "id2label", "label2id", "num_labels", "_num_labels", "problem_type",
    ),
    **ignore(
        "provenance or bookkeeping",
        "architectures", "transformers_version", "_name_or_path", "_commit_hash", "tokenizer_class", "prefix", "finetuning_task",
    ),
    **ignore(
        "the dtype Hugging Face computes in; gptspec reads the stored values and computes in float64",
        "dtype", "torch_dtype", "use_bfloat16",
    ),
    **ignore(
        "the attention kernel (eager, sdpa, flash): the same function, different rounding",
        "_attn_implementation", "_attn_implementation_autoset",
    ),
    **ignore(
        "decoding: how tokens are chosen from the logits, not the logits",
        "task_specific_params", "max_length", "min_length", "do_sample", "early_stopping", "num_beams",
        "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p", "typical_p",
        "repetition_penalty", "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
        "bad_words_ids", "num_return_sequences", "output_scores", "return_dict_in_generate",
        "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
        "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
    ),
    **ignore(
        "what forward returns besides the logits, or how it is exported",
        "output_hidden_states", "output_attentions", "return_dict", "torchscript",
    ),
    **ignore("training only (memory or loss)", "gradient_checkpointing", "tf_legacy_loss"),
}
"""Keys of Hugging Face's ``PretrainedConfig`` that do not change the logits, with the reason."""
