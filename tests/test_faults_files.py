"""Files a run writes and reads: generated-audio names, huge and unsupported audio, hostile dataset folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from audio_evals import storage
from audio_evals.data.audio import AudioError, read_clip
from audio_evals.data.sources import read_folder
from audio_evals.records import SampleFailure, SampleRow
from audio_evals.registry.entries import FolderSource
from audio_evals.run.folder import write_rows
from tests.conftest import ROOT


def test_generated_audio_of_ids_that_read_alike_never_shares_a_file(tmp_path):
    ids = ["a/b", "a_b", "a b", "日本語", "中文", "../x", "." * 300]
    rows = []
    for n, sample_id in enumerate(ids):
        clip = tmp_path / f"clip{n}.wav"
        clip.write_bytes(f"speech of {sample_id}".encode())
        rows.append(SampleRow(id=sample_id, generated_audio=str(clip)))
    folder = tmp_path / "run"
    write_rows(str(folder), rows)

    written = {row["id"]: row["generated_audio"] for row in storage.read_jsonl(str(folder / "samples.jsonl"))}
    assert len(set(written.values())) == len(ids)
    for sample_id, name in written.items():  # each row points at its own sample's speech, inside the run folder
        assert name.startswith("generated/") and "/" not in name.removeprefix("generated/")
        assert (folder / name).read_bytes() == f"speech of {sample_id}".encode()
    assert len(list((folder / "generated").iterdir())) == len(ids)


def test_a_2_gb_sparse_audio_file_is_refused_without_being_read():
    """Run in a child process so its peak memory is this read's alone (VmHWM: ru_maxrss would carry over the
    pytest process's own peak through fork and exec)."""
    code = ("import os, tempfile\n"
            "from audio_evals.data.audio import AudioError, read_clip\n"
            "path = os.path.join(tempfile.mkdtemp(), 'huge.wav')\n"
            "with open(path, 'wb') as f: f.truncate((2 << 30) + 1)\n"
            "try:\n    read_clip(path)\nexcept AudioError as e:\n    print('refused:', e)\n"
            "os.unlink(path)\n"
            "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
            "print(int(hwm.split()[1]) // 1024)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    refused, peak_mb = done.stdout.splitlines()
    assert refused.startswith("refused: audio file") and "larger than" in refused, refused
    assert int(peak_mb) < 500, peak_mb


def test_a_small_file_is_still_read_in_full_and_a_missing_one_named(tmp_path):
    clip = tmp_path / "small.wav"
    clip.write_bytes(b"RIFF" + b"\0" * 60)
    assert read_clip(str(clip)) == clip.read_bytes()
    with pytest.raises(AudioError, match="not found"):
        read_clip(str(tmp_path / "absent.wav"))


def test_m4a_in_a_folder_dataset_is_a_per_sample_failure_saying_it_cannot_be_decoded(tmp_path):
    (tmp_path / "talk.m4a").write_bytes(b"\0\0\0\x18ftypM4A ")
    (tmp_path / "talk.txt").write_text("hello", encoding="utf-8")
    (row,) = list(read_folder(FolderSource(type="folder", path=str(tmp_path)), None))
    assert isinstance(row, SampleFailure) and row.id == "talk"
    assert ".m4a" in row.error and "cannot be decoded" in row.error


def test_a_folder_dataset_at_the_filesystem_root_is_refused():
    with pytest.raises(ValueError, match="dataset folder / is the filesystem root"):
        list(read_folder(FolderSource(type="folder", path="/"), None))


def test_a_folder_dataset_whose_files_vanish_while_it_is_read_goes_on(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.wav").write_bytes(b"RIFF")
        (tmp_path / f"{name}.txt").write_text(name, encoding="utf-8")
    rows = read_folder(FolderSource(type="folder", path=str(tmp_path)), None)
    first = next(rows)
    os.unlink(tmp_path / "b.txt")  # gone between the listing and the read
    os.unlink(tmp_path / "c.wav")
    rest = list(rows)
    assert first.id == "a" and [r.id for r in rest] == ["b", "c"]
    assert all(isinstance(r, SampleFailure) for r in rest), rest
    assert json.dumps([r.to_dict() for r in rest])  # recorded like any bad row
