"""A backend run in a child process of its own (``own_process``): same answers, same error kinds, and
the child never outlives what it serves."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from audio_evals.models import generation_params
from audio_evals.models.base import ModelOutput, ModelRequest, TransientBackendError
from audio_evals.models.faster_whisper import FasterWhisperBackend
from audio_evals.registry import load_registry
from tests.backends.scripted import ScriptedBackend
from tests.conftest import SAMPLE_DIR
from tests.processes import REPO, wait_for

#: The sample's English clips: Whisper tiny.en decodes them without its random temperature fallback.
CLIPS = [SAMPLE_DIR / row["audio"] for row in map(json.loads, (SAMPLE_DIR / "manifest.jsonl").read_text().splitlines())
         if row["lang"] == "en"]


def _requests(n: int) -> list[ModelRequest]:
    return [ModelRequest(f"s{i}", str(CLIPS[i]), 16000) for i in range(n)]


def _pids(loads_file: Path) -> list[int]:
    return [int(line) for line in loads_file.read_text().split()] if loads_file.exists() else []


def _gone(pid: int) -> bool:
    """Ended (a zombie not yet reaped by whoever adopted it counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_whisper_in_its_own_process_transcribes_exactly_as_in_this_one():
    """The embedded default's own child gives the same texts as the model loaded here, and ends on close."""
    entry = load_registry().models["whisper-tiny.en"]
    apart = FasterWhisperBackend(generation=generation_params(entry), **entry.args)  # own_process by default
    inside = dataclasses.replace(apart, own_process=False)
    assert apart.own_process
    try:
        here = [o.text for o in inside.generate(_requests(3))]
        there = [o.text for o in apart.generate(_requests(3))]
        child = apart.loaded()
        assert child.pid != os.getpid() and child.alive()
    finally:
        inside.close()
        apart.close()
    assert there == here and all(here)
    assert not child.alive()


def test_answers_come_back_in_order_from_a_child_that_loaded_once(tmp_path):
    """Two calls, one child (its pid is not this process's), answers in request order."""
    responses = tmp_path / "responses.json"
    responses.write_text(json.dumps({"s0": "zero", "s1": "one", "s2": "two"}))
    loads = tmp_path / "loads"
    backend = ScriptedBackend(responses_file=str(responses), loads_file=str(loads), own_process=True)
    try:
        first = backend.generate(_requests(3))
        second = backend.generate(list(reversed(_requests(2))))
    finally:
        backend.close()
    assert [(o.sample_id, o.text) for o in first] == [("s0", "zero"), ("s1", "one"), ("s2", "two")]
    assert [o.sample_id for o in second] == ["s1", "s0"]
    assert len(_pids(loads)) == 1 and _pids(loads)[0] != os.getpid()


def test_a_transient_failure_in_the_child_is_raised_here_with_the_answers_it_carries(tmp_path):
    """The kind survives the process boundary, so the shard is retried and keeps what was answered."""
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"fail_once_ids": ["s1"]}))
    backend = ScriptedBackend(faults_file=str(faults), default_answer="a", own_process=True)
    try:
        with pytest.raises(TransientBackendError, match="injected mid-shard failure") as raised:
            backend.generate(_requests(3))
        assert [o.sample_id for o in raised.value.answered] == ["s0", "s2"]
        assert all(isinstance(o, ModelOutput) and o.text == "a" for o in raised.value.answered)
        assert [o.text for o in backend.generate(_requests(2))] == ["a", "a"]  # the same child goes on
    finally:
        backend.close()


def test_a_child_killed_mid_call_fails_that_call_by_name_and_the_next_call_starts_a_new_one(tmp_path):
    loads = tmp_path / "loads"
    backend = ScriptedBackend(loads_file=str(loads), delay_s=30, own_process=True)
    try:
        backend.loaded()
        pid = _pids(loads)[0]
        killer = subprocess.Popen([sys.executable, "-c", f"import os, time; time.sleep(1); os.kill({pid}, 9)"])
        with pytest.raises(RuntimeError, match=rf"engine process \(pid {pid}\) was killed by signal 9"):
            backend.generate(_requests(1))
        killer.wait(timeout=10)
        backend.delay_s = 0  # the next child is built from the backend as it is now
        assert [o.sample_id for o in backend.generate(_requests(1))] == ["s0"]
        assert len(_pids(loads)) == 2 and _pids(loads)[1] != pid
    finally:
        backend.close()


def test_a_child_whose_load_fails_raises_the_load_error_here_and_is_gone(tmp_path):
    backend = FasterWhisperBackend(model_path=str(tmp_path / "no-such-model"))
    with pytest.raises(Exception, match="no model folder") as raised:
        backend.loaded()
    assert type(raised.value).__name__ == "BackendUnavailable"



def test_a_child_started_early_is_the_one_that_answers_and_its_load_error_is_raised_when_waited_for(tmp_path):
    """``start_loading`` returns before the load ends (the load takes 2 s; the call returns with no load
    recorded), the next call is answered by that child, and a failed early load raises its own error."""
    loads = tmp_path / "loads"
    backend = ScriptedBackend(loads_file=str(loads), load_s=2, default_answer="a", own_process=True)
    try:
        backend.start_loading()
        assert _pids(loads) == []
        backend.start_loading()  # a second call starts no second child
        assert [o.text for o in backend.generate(_requests(2))] == ["a", "a"]
        assert len(_pids(loads)) == 1
    finally:
        backend.close()
    broken = FasterWhisperBackend(model_path=str(tmp_path / "no-such-model"))
    broken.start_loading()
    with pytest.raises(Exception, match="no model folder") as raised:
        broken.loaded()
    assert type(raised.value).__name__ == "BackendUnavailable"


_PARENT = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises here even where it was ignored at start
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # numpy's threads, started by the imports, never take it
from tests.backends.scripted import ScriptedBackend
from audio_evals.models.base import ModelRequest
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # so it reaches the main thread, in its wait
b = ScriptedBackend(loads_file=sys.argv[1], delay_s=60, own_process=True)
b.generate([ModelRequest("s0", sys.argv[2], 16000)])
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_the_child_ends_when_its_parent_is_killed_or_interrupted_in_the_middle_of_a_call(tmp_path, sig):
    """kill -9 (no handler runs) and Ctrl-C of the parent alike: no engine process is left behind."""
    loads = tmp_path / "loads"
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(loads), str(CLIPS[0])], cwd=REPO,
                              stderr=subprocess.DEVNULL)
    try:
        child = wait_for("the child to load", lambda: _pids(loads) and _pids(loads)[0], 60, 0.1)
        time.sleep(0.5)  # in the middle of the 60 s call
        parent.send_signal(sig)
        parent.wait(timeout=10)
        wait_for(f"child {child} to end", lambda: _gone(child), 10, 0.1)
    finally:
        parent.kill()
        parent.wait()
