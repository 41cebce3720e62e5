"""`tau2-rollout`: one convention for every command (help, key=value arguments, bad input as one
line and exit 2, -v / -vv), and `episode`: the offline check, the sweep's overrides, its errors."""

import json
import logging
import os
import re
import subprocess
import sys

import pytest

from rollout.cli import COMMANDS, main

# a key of each command's own arguments, which an unknown key's error must name
A_VALID_KEY = {
    "sweep": "num_samples",
    "episode": "task_id",
    "submit": "address",
    "report": "dirs",
    "dataset": "min_rows",
    "sft": "min_reward",
    "bench": "p6_sizes",
    "capture-check": "episodes",
    "validate-tasks": "tasks",
}


def run_cli(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TAU2_USER"))}
    return subprocess.run(
        [sys.executable, "-m", "rollout", "episode", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_offline_oracle_check_prints_reward_one():
    p = run_cli("domain=airline", "task_id=12", "llm.scripted=oracle")
    assert p.returncode == 0, p.stderr
    assert "reward: 1.0  termination: user_stop" in p.stdout
    assert "assistant: [calls] update_reservation_baggages" in p.stdout  # the short transcript


def test_offline_noop_solo_and_json():
    p = run_cli("domain=mock", "task_id=create_task_1", "llm.scripted=noop", "solo=true", "json=true")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["solo"] and result["termination"] == "agent_stop" and result["reward"] == 0.0


def test_sweep_overrides_apply(tmp_path):
    """The same keys as a sweep: episode limits, sampling presets, a --config file."""
    conf = tmp_path / "c.yaml"
    conf.write_text("episode:\n  max_steps: 3\n")
    p = run_cli("--config", str(conf), "domain=airline", "task_id=12", "llm.scripted=oracle", "sampling=eval", "json=true")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["termination"] == "max_steps" and result["steps"] == 3 and result["reward"] == 0.0


def test_unknown_domain_task_and_keys_are_clear_errors():
    p = run_cli("domain=banking", "task_id=1", "llm.scripted=oracle")
    assert p.returncode == 2 and "unknown domain 'banking'; valid domains: airline, retail, telecom, mock" in p.stderr
    p = run_cli("domain=retail", "task_id=5000", "llm.scripted=oracle")
    assert p.returncode == 2 and "unknown task_id '5000' for domain 'retail'" in p.stderr
    p = run_cli("domain=retail", "task_id=1", "llm.scripted=oracel")
    assert p.returncode == 2 and "llm.scripted='oracel' is not one of oracle, noop" in p.stderr
    p = run_cli("domain=retail", "task_id=1", "episode.max_step=3")
    assert p.returncode == 2 and "unknown key 'episode.max_step' (did you mean 'episode.max_steps'?)" in p.stderr
    p = run_cli("domain=retail", "llm.scripted=oracle")
    assert p.returncode == 2 and "task_id=... is required" in p.stderr


def one_line_error(capsys) -> str:
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in out + err, err
    return err


def test_every_command_is_covered():
    assert set(A_VALID_KEY) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_of_every_command(command, flag, capsys):
    assert main([command, flag]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"`tau2-rollout {command}") and A_VALID_KEY[command] in out and not err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unknown_key_names_the_valid_keys(command, capsys):
    assert main([command, "no_such_key=1"]) == 2
    err = one_line_error(capsys)
    assert "unknown key 'no_such_key'; valid keys: " in err and A_VALID_KEY[command] in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "quick=maybe"], "'quick': Value 'maybe' is not a valid bool"),
        (["bench", "rows=[P1,P99]"], "valid rows: P1, P2"),
        (["dataset", "min_rows=many"], "'min_rows': Value 'many' of type 'str' could not be converted to Integer"),
        (["sft", "output_dir=x", "min_reward=high"], "could not be converted to Float"),
        (["submit", "wait=maybe"], "'wait': Value 'maybe' is not a valid bool"),
        (["report", "runs/a"], "override 'runs/a' is not of the form key=value"),
        (["report", "--out", "x"], "unknown option '--out': arguments are key=value; valid keys: dirs, out"),
        (["report"], "dirs=[...] is required"),
        (["sft"], "output_dir=... is required"),
        (["sft", "output_dir=x", "domains=[banking]"], "unknown domain 'banking'"),
        (["submit", "domains=[retail]"], "the sweep's keys go after `--`"),
        (["swep"], "unknown command 'swep', did you mean 'sweep'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in one_line_error(capsys)


def test_usage_without_a_command(capsys):
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("`tau2-rollout [-v | -vv] <command>")
    assert main(["-h"]) == 0
    assert "capture-check" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, level",
    [
        (["dataset", "x=1"], logging.WARNING),
        (["-v", "dataset", "x=1"], logging.INFO),
        (["dataset", "-v", "x=1"], logging.INFO),
        (["-vv", "dataset", "x=1"], logging.DEBUG),
        (["-v", "dataset", "--verbose", "x=1"], logging.DEBUG),
    ],
)
def test_verbosity_sets_the_logging_level_with_a_one_line_format(argv, level, capsys):
    try:
        assert main(argv) == 2
        capsys.readouterr()
        assert logging.getLogger("rollout").level == level and logging.getLogger().level == logging.WARNING
        logging.getLogger("rollout.probe").warning("probe\nsecond line stays in the record")
        err = capsys.readouterr().err
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING rollout.probe: probe\n", err), err
    finally:
        main(["dataset", "x=1"])  # back to WARNING
        capsys.readouterr()


def test_the_module_entry_takes_global_flags_after_the_command():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TAU2_USER"))}
    p = subprocess.run(
        [sys.executable, "-m", "rollout", "report", "-v", "dirs=[/nonexistent]"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 2 and p.stderr == "error: no episodes.jsonl in /nonexistent\n"


def test_vvv_opens_every_librarys_debug_logging(capsys):
    try:
        assert main(["-vvv", "dataset", "x=1"]) == 2
        assert logging.getLogger().level == logging.DEBUG and logging.getLogger("rollout").level == logging.DEBUG
    finally:
        main(["dataset", "x=1"])
        capsys.readouterr()
    assert logging.getLogger().level == logging.WARNING


def test_the_scripted_server_help_is_quiet_and_quick():
    """`--help` answers before tau2 is imported: no log lines of tau2 or litellm, no wait."""
    p = subprocess.run([sys.executable, "-m", "rollout.scripted", "--help"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "--policy" in p.stdout and p.stderr == "", p.stderr[-2000:]
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, rollout.scripted; print('tau2' in sys.modules)"], capture_output=True, text=True
    )
    assert imported.stdout.strip() == "False", imported.stderr[-2000:]


def test_a_telecom_task_id_is_taken_as_written():
    """telecom's ids start with `[` (YAML would read a list): the documented command runs one."""
    from rollout.env.domains import load_domain

    task_id = load_domain("telecom").task_ids()[0]
    assert task_id.startswith("[")
    p = run_cli("domain=telecom", f"task_id={task_id}", "llm.scripted=oracle")
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"reward: 1.0  termination: user_stop  (telecom/{task_id}," in p.stdout
