"""Hostile registry files: a YAML alias bomb is one error line, a runaway Jinja prompt one error per sample."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audio_evals.registry import loader
from tests.conftest import ROOT

#: Nine levels of nine aliases: 9**9 (387 million) list items once expanded, a few hundred bytes on disk.
ALIAS_BOMB = "\n".join(
    ["models:", "  bomb:", "    backend: scripted", "    args:", "      l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    + [f"      l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
) + "\n"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a blow-up ends here, not in the machine's swap


@pytest.mark.parametrize("command", [["list", "models", "--json"], ["list", "models"],
                                     ["run", "--dataset", "speech-sample-en", "--model", "bomb", "--dry-run"]],
                         ids=["list-json", "list", "dry-run"])
def test_a_yaml_alias_bomb_is_one_error_line(tmp_path, command):
    (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB, encoding="utf-8")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli", *command, "--registry-path", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False, preexec_fn=_limit_memory)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2 and time.monotonic() - start < 60, lines[-10:]
    (line,) = lines
    assert line.startswith(f"error: {tmp_path / 'bomb.yaml'}: its aliases expand to more than"), line


def test_an_oversized_registry_file_is_refused_unparsed(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("models: {}\n" + "#" * (loader.MAX_FILE_BYTES + 1), encoding="utf-8")
    with pytest.raises(loader.RegistryError, match=r"big\.yaml: \d+ bytes, over the 4 MB"):
        loader.load_registry([str(tmp_path)])


def test_registry_files_are_parsed_once_per_version(tmp_path, monkeypatch):
    extra = tmp_path / "extra.yaml"
    extra.write_text("models:\n  one: {backend: scripted}\n", encoding="utf-8")
    parsed: list[Path] = []
    real = loader.parse_yaml
    monkeypatch.setattr(loader, "parse_yaml", lambda path: parsed.append(path) or real(path))
    loader.load_registry([str(tmp_path)])
    loader.load_registry([str(tmp_path)])
    assert parsed.count(extra) <= 1  # parsed by the first load (or an earlier test), never again
    before = parsed.count(extra)
    extra.write_text("models:\n  two: {backend: scripted}\n", encoding="utf-8")  # a new version is read again
    assert "two" in loader.load_registry([str(tmp_path)]).models and parsed.count(extra) == before + 1


HOSTILE_PROMPTS = {
    "loop": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "repeat": "{{ 'x' * 10**10 }}",
    "doubling": "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "width": "{{ id|center(10**10) }}",
    "output": "{% for i in range(100000) %}{{ id * 1000 }}{% endfor %}",
    "recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
}


def test_runaway_jinja_prompts_fail_each_sample_in_one_line_and_the_run_goes_on(prefect_api, tmp_path,
                                                                              scripted_registry):
    from audio_evals import evaluate

    prompts = "\n".join(f"  {name}:\n    messages:\n      - role: user\n        contents:\n"
                        f"          - {{type: audio, value: audio}}\n          - {{type: text, value: {template!r}}}"
                        for name, template in HOSTILE_PROMPTS.items())
    (Path(scripted_registry["path"]) / "prompts.yaml").write_text("prompts:\n" + prompts + "\n", encoding="utf-8")
    for name in HOSTILE_PROMPTS:
        start = time.monotonic()
        summary = evaluate(dataset="speech-sample-en", model="scripted", prompt=name, limit=2,
                           registry_paths=[scripted_registry["path"]], cache_dir=str(tmp_path / "cache"),
                           output=str(tmp_path / f"results-{name}"))
        assert summary.counts.failed == 2 and not summary.failed_shards, name  # per sample, not the shard
        assert time.monotonic() - start < 30, name
        rows = (Path(summary.paths["summary"]).parent / "samples.jsonl").read_text().splitlines()
        errors = [line for line in rows if f"prompt '{name}'" in line]
        assert len(errors) == 2, (name, rows)
