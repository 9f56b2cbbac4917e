"""Campaigns that shard (issue 13, item 4): ``--shard i/n`` splits the drawn cases and components
deterministically, the shards together are exactly the unsharded campaign, and their JUnit
reports merge (gptspec/verify/shard/, docs/ci.md)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gptspec.cli import main
from gptspec.verify import FastImplementation, Options
from gptspec.verify.report import junit
from gptspec.verify.session import Runner, setup, verify_target
from gptspec.verify.shard import main as shard_main
from gptspec.verify.shard import merge_junit, parse_shard
from spec import ConfigError


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "-1/2", "a/b", "2", "1/2/3", ""])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--shard .*, but expected i/n with whole numbers 1 ≤ i ≤ n"):
        parse_shard(text)


def test_bad_shards_are_refused_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tiny", "--shard", "3/2"]) == 2  # could not run
    assert "--shard '3/2', but expected i/n" in capsys.readouterr().err
    assert main(["verify", "gptspec.verify:FastImplementation", "--layout", "hf-gpt2", "--shard", "0/1"]) == 2
    assert "--shard '0/1', but expected i/n" in capsys.readouterr().err


def plan(shard: tuple[int, int], **options: object) -> dict[str, list[object]]:
    opts = Options(layout="hf-gpt2", examples=7, generation_examples=5, shard=shard, **options)  # type: ignore[arg-type]
    return Runner(setup(FastImplementation("float64"), opts), opts, None).plan()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_the_union_of_the_shards_is_the_unsharded_campaign(n: int) -> None:
    """Every drawn case (config, θ seed and magnitude, batch) and every op component, of every
    component key: in exactly one shard, with the same draw as unsharded."""
    whole = plan((1, 1))
    assert all(whole[key] for key in ("model", "decode", "generate", "weights", "ops"))
    shards = [plan((i, n)) for i in range(1, n + 1)]
    for key, items in whole.items():
        parts = [shard[key] for shard in shards]
        union = [item for part in parts for item in part]
        assert sorted(map(repr, union)) == sorted(map(repr, items)), key  # the same items, each once
        assert len(set(map(repr, union))) == len(union) == len(items), key
        if n > 1 and len(items) >= n:
            assert all(parts), key  # every shard has work when there is enough


def test_sharded_check_splits_as_verify_does(capsys: pytest.CaptureFixture[str]) -> None:
    """``check`` is verify's run on fast/ (gptspec/verify/engine.py): its shards split the model's
    cases and the op components as verify's do — each op component in one shard, each case in one."""
    import json

    assert main(["check", "tiny", "--examples", "4", "--format", "json"]) == 0
    whole = json.loads(capsys.readouterr().out)["results"]
    seen = []
    for i in (1, 2, 3):
        assert main(["check", "tiny", "--examples", "4", "--format", "json", "--shard", f"{i}/3"]) == 0
        seen += json.loads(capsys.readouterr().out)["results"]
    models = ("model: padded batches", "model: incremental decoding")
    ops = sorted(r["component"] for r in seen if r["component"] not in models)
    assert ops == sorted(r["component"] for r in whole if r["component"] not in models)
    by_name = {r["component"]: r for r in whole}
    for r in seen:  # an op component: the same draws, the same worst error
        if r["component"] not in models:
            assert r["examples"] == by_name[r["component"]]["examples"] and r["max_error"] == by_name[r["component"]]["max_error"]
    for name in models:  # a model component: its cases partitioned, the worst error among the shards' the whole run's
        parts = [r for r in seen if r["component"] == name]
        assert sum(r["examples"] for r in parts) == by_name[name]["examples"] and len(parts) > 1
        assert max(r["max_error"] for r in parts) == by_name[name]["max_error"]


def test_shards_junit_reports_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = []
    for i in (1, 2):
        report = verify_target(FastImplementation("float64"), layout="hf-gpt2", examples=4, generation_examples=2, op_examples=2,
                               components=("model", "generate"), shard=(i, 2))
        assert report.exit_code == 0 and any("shard" in note for note in report.notes)
        files.append(tmp_path / f"shard{i}.xml")
        files[-1].write_text(junit(report))
    whole = verify_target(FastImplementation("float64"), layout="hf-gpt2", examples=4, generation_examples=2, op_examples=2,
                          components=("model", "generate"))
    assert shard_main(["merge", *map(str, files), "--out", str(tmp_path / "all.xml")]) == 0
    assert "testcases, 0 failures" in capsys.readouterr().out
    merged = ET.parse(tmp_path / "all.xml").getroot()
    names = sorted(c.get("name", "") for c in merged.iter("testcase"))
    assert names == sorted(r.component for r in whole.results)
    # a failure in one shard fails the merged testcase
    failing = files[1].read_text().replace("<testcase classname=\"gptspec.verify.hf-gpt2\" name=\"model: padded batches\"",
                                           "<testcase classname=\"gptspec.verify.hf-gpt2\" name=\"model: padded batches\"><failure message=\"x\" />"
                                           "</testcase><testcase classname=\"ignored\" name=\"ignored\"", 1)
    out = ET.fromstring(merge_junit([files[0].read_text(), failing]))
    case = next(c for c in out.iter("testcase") if c.get("name") == "model: padded batches")
    assert case.find("failure") is not None and out.find("testsuite").get("failures") == "1"  # type: ignore[union-attr]
