"""The command line: every seed ``eval_cli`` command resolves; bad names fail with suggestions."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audio_evals.registry import load_registry
from cli.main import app

SEEDS = Path(__file__).parent / "seeds"
ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def seed_commands() -> list[str]:
    commands = []
    for seed in sorted(SEEDS.glob("*.txt")):
        commands += re.findall(r"`(python audio_evals/main\.py [^`]+)`", seed.read_text(encoding="utf-8"))
    return [c.strip() for c in commands]


def test_the_seeds_hold_26_commands():
    assert len(seed_commands()) == 26


def test_step_suite_dry_run_shows_each_rows_plan_with_the_seeds_filter_and_note():
    """``suite step-audio-r1.1 --dry-run`` resolves every row without running it: the seven ASR rows
    run with the seed's WER > 1000 filter and carry its note, the MMAU row neither."""
    result = runner.invoke(app, ["suite", "step-audio-r1.1", "--dry-run"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["row"] for r in rows] == list(range(1, 9)) and not any("not_runnable" in r for r in rows)
    asr, mmau = rows[:7], rows[7]
    assert all(r["drop_above_wer"] == 1000 and r["note"] == "Filtered abnormal samples (WER > 1000)" for r in asr)
    assert [r["task"]["metric"] for r in asr] == ["wer"] * 5 + ["cer"] * 2
    assert (mmau["dataset"]["name"], mmau["drop_above_wer"], mmau["note"], mmau["prompt"]) == (
        "mmau-test-mini", None, "", "step_audio_r1_mmau")
    assert all(r["model"]["name"] == "step-audio-r1.1" for r in rows)


@pytest.mark.parametrize("command", seed_commands())
def test_seed_command_resolves_in_dry_run(command):
    args = shlex.split(command)[2:]
    result = runner.invoke(app, ["run", *args, "--dry-run"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["eval_cli"] == " ".join(command.split())
    assert plan["model"]["backend"] and plan["task"]["metric"]


def test_unknown_names_fail_before_any_work_with_suggestions():
    result = runner.invoke(app, ["run", "--dataset", "librispeech-test-clen", "--model", "whisper-tiny.en"])
    assert result.exit_code == 2
    assert "unknown dataset 'librispeech-test-clen'" in result.output and "librispeech-test-clean" in result.output
    result = runner.invoke(app, ["run", "--dataset", "speech-sample", "--model", "kimi-audio"])
    assert result.exit_code == 2 and "kimiaudio" in result.output


@pytest.mark.parametrize("kind", ["datasets", "models", "prompts", "tasks"])
def test_list(kind):
    result = runner.invoke(app, ["list", kind])
    assert result.exit_code == 0 and kind in result.output


def test_registry_yaml_cannot_name_code_outside_the_project(tmp_path):
    (tmp_path / "evil.yaml").write_text("models:\n  evil:\n    backend: os.system\n", encoding="utf-8")
    result = runner.invoke(app, ["list", "models", "--registry-path", str(tmp_path)])
    assert result.exit_code == 2 and "unknown backend 'os.system'" in result.output


def test_the_test_only_backend_is_not_in_the_installed_plugin_set(tmp_path):
    """A registry file naming ``scripted`` (whose calls_file appends to any file) is refused in production."""
    from audio_evals import plugins

    assert not (Path(plugins.__file__).parent / "models" / "scripted.py").exists()
    (tmp_path / "models.yaml").write_text(
        f"models:\n  scripted:\n    backend: scripted\n    args: {{calls_file: {tmp_path / 'profile'}}}\n")
    env = {k: v for k, v in os.environ.items() if k != "AUDIO_EVALS_EXTRA_BACKENDS"}
    production = subprocess.run([sys.executable, "-m", "cli", "list", "models", "--registry-path", str(tmp_path)],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert production.returncode == 2 and "unknown backend 'scripted'" in production.stdout, production.stdout
    assert "scripted" in plugins.available("audio_evals.models")  # the tests name it (tests/conftest.py)


def test_seed_models_fail_fast_naming_what_is_missing(tmp_path):
    result = runner.invoke(app, ["run", "--dataset", "speech-sample-en", "--model", "step-audio-r1.1", "--limit", "1",
                                 "--cache-dir", str(tmp_path), "--output", str(tmp_path)])
    assert result.exit_code == 2
    assert "vllm" in result.output.lower()


def test_a_model_this_machine_cannot_run_stops_before_the_dataset_is_fetched(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIO_EVALS_HF_MIRROR", str(tmp_path / "no-such-mirror"))
    result = runner.invoke(app, ["run", "--dataset", "librispeech-test-clean", "--model", "kimiaudio", "--limit", "1",
                                 "--cache-dir", str(tmp_path), "--output", str(tmp_path)])
    assert result.exit_code == 2
    assert "model 'kimiaudio' cannot run here" in result.output and "kimia_infer" in result.output
    assert "Traceback" not in result.output and "Hugging Face" not in result.output
    assert not (tmp_path / "datasets").exists()


@pytest.mark.parametrize("model, unused, used", [("whisper-tiny.en", "device", "beam_size"),
                                                 ("step-audio-r1.1", "batch_size", "stop_token_ids"),
                                                 ("kimiaudio", "temperature", "text_temperature")])
def test_a_generation_parameter_the_model_does_not_use_is_refused_naming_those_it_does(model, unused, used):
    for dry_run in ([], ["--dry-run"]):
        result = runner.invoke(app, ["run", "--dataset", "speech-sample-en", "--model", model, "-P", f"{unused}=1",
                                     *dry_run])
        assert result.exit_code == 2, result.output
        message = " ".join(result.output.split())
        assert f"does not use generation parameter(s) {unused};" in message and used in message.split("uses:")[1]


def test_every_registry_entry_says_what_it_is():
    registry = load_registry()
    for section in ("datasets", "models", "prompts", "tasks"):
        assert not [name for name, entry in getattr(registry, section).items() if not entry.description.strip()], section
