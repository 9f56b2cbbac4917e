"""The install route works exactly as documented (README "Install", docs/ci.md).

Every shell command of docs/ci.md's GitHub Actions workflows and of the README's "Install" section
that installs or runs gptspec is extracted and either run here — the wheel is really built from
this tree and installed, with the documented command, into a fresh venv, whose ``gptspec`` then
runs — or, where it needs what a test cannot have (an index, the reader's own package), checked
against the forms the README documents, its options parsed by gptspec's own parser. A workflow
that installs gptspec by a route the README does not give (``pip install gptspec`` from an index,
where it is not published) fails here, and so does a wheel file name that drifts from the
version."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import gptspec

ROOT = Path(__file__).resolve().parent.parent
WHEEL = f"gptspec-{gptspec.__version__}-py3-none-any.whl"
"""The file ``pip wheel --no-deps . -w dist`` writes for this version (a pure-Python wheel)."""

SOURCES = ("pyproject.toml", "README.md", "LICENSE", "spec", "reference", "fast", "proofs", "gptspec")
"""What building the wheel reads (pyproject.toml's packages, readme and license file)."""


def yaml_run_commands(text: str) -> list[str]:
    """The shell commands of every ``run:`` step in the ```yaml blocks of ``text``: a one-line
    ``run: …``, a literal ``run: |`` block (one command a line) or a folded ``run: >`` block (its
    lines joined); commands chained with ``&&`` are split. Comments are dropped."""
    commands: list[str] = []
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            match = re.match(r"^(\s*)(?:- )?run: ?(.*)$", lines[i])
            i += 1
            if match is None:
                continue
            indent, rest = len(match.group(1)), match.group(2).strip()
            if rest in ("|", ">"):
                body = []
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    body.append(lines[i].strip())
                    i += 1
                found = [" ".join(b for b in body if b)] if rest == ">" else [b for b in body if b]
            else:
                found = [rest]
            for line in found:
                commands += [part.strip() for part in _uncommented(line).split("&&") if part.strip()]
    return commands


def sh_commands(text: str) -> list[str]:
    """The commands of the ```sh blocks of ``text``, one a line, comments dropped."""
    return [_uncommented(line) for block in re.findall(r"```sh\n(.*?)```", text, re.S) for line in block.splitlines()
            if _uncommented(line)]


def _uncommented(line: str) -> str:
    return re.split(r"\s+#\s", " " + line + " ", maxsplit=1)[0].strip()


def readme_install_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Install\n", 1)[1].split("\n## ", 1)[0]
    return sh_commands(section)


CI = (ROOT / "docs" / "ci.md").read_text()
WORKFLOW = yaml_run_commands(CI)
ABOUT_GPTSPEC = [c for c in WORKFLOW + sh_commands(CI) + readme_install_commands() if "gptspec" in c or c.startswith("pip ")]


def test_the_docs_have_workflow_commands_to_check() -> None:
    """The extraction finds the workflows' steps (guards against checking an empty list)."""
    assert sum(c.startswith("gptspec verify") for c in WORKFLOW) >= 2, WORKFLOW
    assert any("shard merge" in c for c in WORKFLOW) and sum(c.startswith("pip install") for c in WORKFLOW) >= 4, WORKFLOW


# -- every command, by what it is ----------------------------------------------------------------------

LOCAL_GPTSPEC = {".", ".[torch]", ".[test]", "./gptspec[torch]"}
"""gptspec from its source (the clone's root, or its checkout at ``gptspec/`` in the reader's repository)."""


def _install_targets(command: str) -> list[str]:
    words = shlex.split(command)[2:]
    targets, skip = [], False
    for w in words:
        if skip:
            skip = False
        elif w in ("--index-url", "-w"):
            skip = True
        elif not w.startswith("-"):
            targets.append(w)
    return targets


@pytest.mark.parametrize("command", ABOUT_GPTSPEC, ids=range(len(ABOUT_GPTSPEC)))
def test_every_documented_command_is_a_documented_route(command: str) -> None:
    """Each command installs gptspec from a wheel of this version or from its source, installs a
    third party from where it is published, or runs gptspec with options its parser accepts."""
    words = shlex.split(command.replace("${{ matrix.dtype }}", "float32").replace("${{ matrix.shard }}", "1"))
    if words[:2] == ["pip", "wheel"]:
        assert words == ["pip", "wheel", "--no-deps", ".", "-w", "dist"], command
    elif words[:2] == ["pip", "install"]:
        assert "gptspec" not in _install_targets(command), f"{command!r} installs gptspec from an index, where it is not published"
        for target in _install_targets(command):
            bare = target.split("[")[0]
            if bare.endswith(".whl"):
                assert Path(bare).name == WHEEL, f"{command!r}: the wheel of version {gptspec.__version__} is {WHEEL}"
                assert target in (bare, bare + "[torch]"), command
            elif target == "-e":
                continue
            else:  # the reader's own package (.), gptspec's source, or a published third party
                assert target in LOCAL_GPTSPEC or target in ("torch", "pytest"), f"{command!r}: {target!r} is not a documented route"
    elif words[:2] == ["gptspec", "verify"]:
        from gptspec.cli import build_parser

        args = build_parser().parse_args(words[1:])  # an unknown option or a bad value exits 2 here
        assert args.command == "verify" and args.target.startswith("mypkg."), command
    elif words[:4] == ["python", "-m", "gptspec.verify.shard", "merge"]:
        assert "--out" in words, command
    else:
        raise AssertionError(f"{command!r} is neither an install route nor a gptspec command the docs explain")


def test_the_workflow_wheel_is_the_one_the_readme_builds() -> None:
    """The README's two wheel commands name the file the first writes; docs/ci.md installs that file."""
    readme = readme_install_commands()
    assert "pip wheel --no-deps . -w dist" in readme and f"pip install dist/{WHEEL}" in readme, readme
    assert f"ci/{WHEEL}" in CI and "pip install gptspec\n" not in CI


# -- the route, run ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's ``pip wheel --no-deps . -w dist``, run in a copy of this tree (so the shared
    tree gets no build/ folder), offline (``--no-build-isolation``: setuptools is the test venv's)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "gptspec"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    command = [*shlex.split("pip wheel --no-deps . -w dist"), "--no-build-isolation", "--no-index", "-q"]
    run = subprocess.run([sys.executable, "-m", *command], cwd=source, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    built = sorted(p.name for p in (source / "dist").iterdir())
    assert built == [WHEEL], f"pip wheel wrote {built}, but the docs install {WHEEL}"
    return source / "dist" / WHEEL


def test_the_wheel_installs_in_a_fresh_venv_and_runs(wheel: Path, tmp_path: Path) -> None:
    """docs/ci.md's install command for the wheel, run in a fresh venv (offline: ``--no-deps``, the
    dependencies seen through a path entry to this venv's site-packages), then its ``gptspec``."""
    repo = tmp_path / "your-repo"  # the reader's repository, with the wheel in ci/
    (repo / "ci").mkdir(parents=True)
    shutil.copy2(wheel, repo / "ci" / WHEEL)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies (numpy, sympy, …) from this venv; a plain path entry, so its .pth files (an
    # editable gptspec among them) are not read and gptspec can only come from the wheel
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = next(c for c in WORKFLOW if c.startswith("pip install") and WHEEL in c and "[torch]" not in c)
    command = [sys.executable, "-m", "pip", "--python", str(python), *shlex.split(install)[1:], "--no-deps", "--no-index", "-q"]
    run = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    gptspec_bin = venv / "bin" / "gptspec"
    version = subprocess.run([str(gptspec_bin), "--version"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=False)
    assert (version.returncode, version.stdout.strip()) == (0, f"gptspec {gptspec.__version__}"), version
    packages = "import gptspec, spec, reference, fast, proofs; print(*(m.__file__ for m in (gptspec, spec, reference, fast, proofs)))"
    where = subprocess.run([str(python), "-c", packages],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=True).stdout.split()
    assert all(Path(w).is_relative_to(venv) for w in where), f"imported from {where}, not from the installed wheel"
    # the shard job's merge, as the workflow runs it, from the installed package: exit 0, no warning
    (repo / "shard-1.xml").write_text('<testsuites><testsuite name="gptspec verify" tests="1"><testcase name="model"/></testsuite></testsuites>')
    merge = next(c for c in WORKFLOW if "shard merge" in c)
    argv = [str(python), "-W", "error::RuntimeWarning", *shlex.split(merge)[1:]]
    argv = [a for a in argv if a != "shard-*.xml"] + [str(p) for p in sorted(repo.glob("shard-*.xml"))]
    merged = subprocess.run(argv, capture_output=True, text=True, cwd=repo, env=env, timeout=60, check=False)
    assert merged.returncode == 0 and merged.stderr == "", merged.stdout + merged.stderr
    assert ET.parse(repo / "gptspec-verify.xml").getroot().find("testsuite") is not None


def test_the_wheel_states_its_version_license_and_extras(wheel: Path) -> None:
    """The metadata a user's resolver reads: this version, MIT with the LICENSE file, the torch
    extra (torch and transformers) and the test extra reaching it."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"gptspec-{gptspec.__version__}.dist-info/METADATA").decode()
    assert f"\nVersion: {gptspec.__version__}\n" in metadata and "License-Expression: MIT" in metadata, metadata[:400]
    assert any(n.endswith("/LICENSE") for n in names), names[-10:]
    assert "Provides-Extra: torch" in metadata
    assert re.search(r'Requires-Dist: torch>=[\d.]+; extra == "torch"', metadata) and re.search(r'Requires-Dist: transformers>=[\d.]+; extra == "torch"', metadata)
    assert 'Requires-Dist: gptspec[torch]; extra == "test"' in metadata
