"""Published checkpoints' config.json files, read alone (no weights): every key is modelled, ignored
with a reason or refused, and the parameter count from Θ equals the model's published total.

The configs in tests/data/configs/ are the config.json files of the named Hugging Face
checkpoints as published (keys and values; the weights are not needed to count). The totals are
the checkpoints' published parameter counts (their safetensors metadata / model cards).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gptspec.checkpoint import load_architecture
from gptspec.cli import main
from spec import CheckpointError, count

CONFIGS = Path(__file__).resolve().parent / "data" / "configs"

PUBLISHED = {
    "gpt2": ("openai-community/gpt2", 124_439_808),
    "distilgpt2": ("distilbert/distilgpt2", 81_912_576),
    "tinyllama": ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", 1_100_048_384),
    "llama32_1b": ("meta-llama/Llama-3.2-1B", 1_235_814_400),
    "smollm2_135m": ("HuggingFaceTB/SmolLM2-135M", 134_515_008),
    "qwen25_05b": ("Qwen/Qwen2.5-0.5B", 494_032_768),
    "qwen2_7b_swa": ("Qwen/Qwen2-7B", 7_615_616_512),
    "mistral_v01": ("mistralai/Mistral-7B-v0.1", 7_241_732_096),
    "mistral_v03": ("mistralai/Mistral-7B-v0.3", 7_248_023_552),
}


def checkpoint_dir(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    shutil.copy(CONFIGS / f"{name}.json", directory / "config.json")
    return directory


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_published_config_alone_gives_the_published_count(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    directory = checkpoint_dir(tmp_path, name)
    assert count(load_architecture(directory)) == PUBLISHED[name][1], PUBLISHED[name][0]
    assert main(["params", str(directory)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(PUBLISHED[name][1])


def test_every_published_config_is_here() -> None:
    assert {p.stem for p in CONFIGS.glob("*.json")} == set(PUBLISHED)


def test_a_config_without_weights_is_refused_where_weights_are_needed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = checkpoint_dir(tmp_path, "smollm2_135m")
    assert main(["forward", str(directory), "--tokens", "1 2"]) == 2  # could not run
    assert "weights file=none, but expected model.safetensors" in capsys.readouterr().err


def test_a_key_the_layout_does_not_know_is_still_refused_without_weights(tmp_path: Path) -> None:
    directory = checkpoint_dir(tmp_path, "tinyllama")
    raw = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(raw | {"attn_logit_softcapping": 50.0}))
    with pytest.raises(CheckpointError, match="attn_logit_softcapping"):
        load_architecture(directory)


def test_verify_draws_its_own_weights_for_a_config_only_directory(tmp_path: Path) -> None:
    from gptspec.verify import verify_target

    directory = tmp_path / "small"
    directory.mkdir()
    raw = json.loads((CONFIGS / "smollm2_135m.json").read_text())
    small = {"hidden_size": 18, "intermediate_size": 20, "num_hidden_layers": 2, "num_attention_heads": 3, "num_key_value_heads": 1,
             "vocab_size": 40, "max_position_embeddings": 12}
    (directory / "config.json").write_text(json.dumps(raw | small))
    report = verify_target("transformers:LlamaForCausalLM", model=str(directory), examples=3, generation_examples=1,
                           components=("model",))
    assert report.exit_code == 0, report.as_dict()
    assert "small" in report.architecture and "n_kv_heads=1" in report.architecture
