"""`azr exec validate|check` as a user runs it: JSON lines in, JSON lines out."""

import json
import subprocess
import sys

import pytest

AZR = [sys.executable, "-m", "azr_launcher.cli", "exec"]


def _run(tmp_path, action, lines, *extra):
    path = tmp_path / "in.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return subprocess.run([*AZR, action, str(path), "--timeout", "2", *extra], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("sandbox", ["gvisor", "process"])
def test_validate_lines(tmp_path, sandbox):
    result = _run(tmp_path, "validate", [
        {"id": "ok", "program": "def f(a, b):\n    return {a: b}", "input": "'k', [1]", "ignored": True},
        {"id": "nd", "program": "def f(x):\n    return list(set(x))", "input": repr(list("abcdefghijklmnopqrstuvwxyz"))},
        {"id": "inj", "program": "def f(x):\n    return x", "input": "1) or True or (1"},
    ], "--sandbox", sandbox)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows == [
        {"id": "ok", "valid": True, "output": "{'k': [1]}", "error_kind": None},
        {"id": "nd", "valid": False, "output": None, "error_kind": "nondeterministic"},
        {"id": "inj", "valid": False, "output": None, "error_kind": "bad_input"},
    ]


def test_check_lines(tmp_path):
    result = _run(tmp_path, "check", [
        {"id": "d", "task_type": "deduction", "program": "def f(x):\n    return x", "gold_output": "(1,)", "answer": "[1]"},
        {"id": "a", "task_type": "abduction", "program": "def f(x):\n    return x % 5", "gold_output": "2", "answer": "12"},
        {"id": "i", "task_type": "induction", "answer": "def f(s):\n    return s.upper()",
         "hidden_inputs": ["'a'", "'bc'"], "hidden_outputs": ["'A'", "'BC'"], "message": "extra key"},
    ])
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows == [{"id": "d", "correct": False, "error_kind": "wrong_answer"},
                    {"id": "a", "correct": True, "error_kind": None},
                    {"id": "i", "correct": True, "error_kind": None}]


def test_malformed_lines_are_named_and_nothing_runs(tmp_path):
    result = _run(tmp_path, "validate", [{"id": "ok", "program": "def f(x):\n    return x", "input": "1"}, "{not json",
                                         {"id": "no-input", "program": "def f(x):\n    return x"}])
    assert result.returncode == 2 and result.stdout == ""
    assert "line 2" in result.stderr
    result = _run(tmp_path, "check", [{"id": "x", "task_type": "guessing", "answer": "1"}])
    assert result.returncode == 2 and "line 1: task_type" in result.stderr
    result = _run(tmp_path, "validate", [{"id": "x", "input": "1"}])
    assert result.returncode == 2 and "line 1: missing key 'program'" in result.stderr


def test_settings_come_from_the_spec_and_flags_override(tmp_path):
    import argparse

    from azr.programs import EntryFunctionRule
    from azr.spec import SandboxMode, load_run
    from azr_executor.settings import ExecutorSettings

    spec = tmp_path / "run.yaml"
    spec.write_text("apiVersion: azr.dev/v1alpha1\nkind: SelfPlayRun\nmetadata: {name: r}\n"
                    "spec:\n  executor: {workers: 6, timeoutSeconds: 3, sandbox: process}\n"
                    "  method: {outputMaxChars: 100, singleFunction: strict}\n")
    args = ExecutorSettings.from_cli_args(argparse.Namespace(run_file=str(spec), sandbox=None, workers=None, timeout=7.0,
                                                             memory_mib=None, output_max_chars=None, max_inflight_batches=None))
    assert (args.workers, args.timeout_seconds, args.memory_mib, args.output_max_chars) == (6, 7.0, 512, 100)
    assert args.sandbox is SandboxMode.PROCESS and args.entry_rule is EntryFunctionRule.STRICT
    assert ExecutorSettings.from_spec(load_run(spec), {"workers": 9, "sandbox": "gvisor"}).workers == 9
    assert ExecutorSettings.from_spec(load_run(spec), {}, spec_sandbox=False).sandbox is None  # no file: the machine decides
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: azr.dev/v1alpha1\nkind: SelfPlayRun\nmetadata: {name: r}\nspec: {executor: {workers: 1}}\n")
    result = _run(tmp_path, "validate", [{"id": "x", "program": "def f(x):\n    return x", "input": "1"}], "--spec", str(bad))
    assert result.returncode == 2 and "spec.executor.workers" in result.stderr
