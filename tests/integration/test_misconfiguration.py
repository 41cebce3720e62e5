"""Misconfiguration is caught before Ray, in one line, without echoing keys or huge values.

Each case reproduces what an outside pass found: key sources that did not exist became failed
episodes, a key given as a variable *name* slot leaked, two-line key files, `submit` checking
only `api_key`, YAML syntax errors as tracebacks, unwritable output dirs, huge values echoed,
corrupt records accepted on resume, a partial tau2 Results file, an unbounded aenv start.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from rollout.core.config import load_config
from rollout.core.failures import InvalidInput, redact
from rollout.sweep import submit
from rollout.sweep.records import EPISODES_FILE, EpisodeStore, SweepRecord, iter_records
from tests.helpers import command

main = command("sweep")
submit_main = command("submit")

SECRET = "sk-live-SECRET-4242424242"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_a_missing_key_source_is_exit_2_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    out = tmp_path / "out"
    base = ["llm.base_url=http://127.0.0.1:9/v1", "llm.model=m", "domains=[mock]", "episode.solo=true", f"output_dir={out}"]
    assert main([*base[:4], f"output_dir={out}", "llm.api_key_env=NO_SUCH_KEY_VAR"]) == 2
    assert "api_key_env names NO_SUCH_KEY_VAR, which is not set" in one_line_error(capsys) and not out.exists()
    assert main([*base[:4], f"output_dir={out}", f"llm.api_key_file={tmp_path / 'missing.key'}"]) == 2
    assert "cannot be read" in one_line_error(capsys) and not out.exists()


@pytest.mark.parametrize("value", [SECRET, f"Bearer {SECRET}", "$MY-KEY"])
def test_a_key_in_the_variable_name_slot_is_refused_without_echo(tmp_path, capsys, value):
    assert main([f"llm.api_key_env={value}", f"output_dir={tmp_path / 'o'}"]) == 2
    err = one_line_error(capsys)
    assert "is not the name of an environment variable" in err and SECRET not in err and value not in err
    assert not (tmp_path / "o").exists()


def test_a_two_line_key_file_is_refused_and_never_sent(tmp_path, capsys):
    key_file = tmp_path / "k"
    key_file.write_text(f"{SECRET}\nX-Injected: yes\n")
    cfg = load_config([f"llm.api_key_file={key_file}", "llm.base_url=http://127.0.0.1:9/v1"])
    from rollout.core.config import api_key_of

    with pytest.raises(InvalidInput) as e:
        api_key_of(cfg.llm)
    assert "whitespace or control characters" in str(e.value) and SECRET not in str(e.value)
    assert (
        main(
            [
                f"llm.api_key_file={key_file}",
                "llm.base_url=http://127.0.0.1:9/v1",
                "llm.model=m",
                "domains=[mock]",
                f"output_dir={tmp_path / 'o'}",
            ]
        )
        == 2
    )
    assert SECRET not in one_line_error(capsys)


def test_each_echoed_form_of_a_secret_is_redacted():
    secret = 'sk"multi\\part/key'
    text = f"raw {secret} json {json.dumps(secret)} repr {secret!r} url sk%22multi%5Cpart%2Fkey"
    assert "multi" not in redact(text, [secret])


@pytest.mark.parametrize(
    "override", ["llm.apikey=SECRET", "llm.API_KEY=SECRET", "ray.num_wrkers=2", "num_samples=two", "domains=[banking]"]
)
def test_submit_validates_everything_before_the_cluster(override, capsys):
    argv = ["address=http://127.0.0.1:9", "--", override.replace("SECRET", SECRET), "user_llm.base_url=http://x/v1"]
    assert submit_main(argv) == 2  # port 9: contacting it would fail differently
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and err.count("\n") == 1 and SECRET not in out + err


def test_submit_reads_config_files_and_refuses_key_files_it_would_upload(tmp_path, capsys):
    conf = tmp_path / "sweep.yaml"
    conf.write_text("domains: [telecom]\nmax_tasks: 2\nllm:\n  base_url: http://gpu:8000/v1\n")
    entrypoint, _ = submit.build_job([*submit.config_overrides([str(conf)]), "max_tasks=1"], working_dir=str(tmp_path))
    assert """'domains=["telecom"]'""" in entrypoint and "llm.base_url=" in entrypoint and entrypoint.endswith("max_tasks=1")
    (tmp_path / "k").write_text(SECRET)
    assert (
        submit_main(["address=http://127.0.0.1:9", f"working_dir={tmp_path}", "--config", str(conf), "--", "llm.api_key_file=k"])
        == 2
    )
    assert "inside the working directory" in one_line_error(capsys)
    conf.write_text(f"llm:\n  api_key: {SECRET}\n")
    assert submit_main(["address=http://127.0.0.1:9", "--config", str(conf)]) == 2
    assert SECRET not in one_line_error(capsys)


@pytest.mark.parametrize(
    "text, what",
    [
        ("domains: [airline\n", "did not find expected"),
        ("llm:\n\tmodel: x\n", "cannot start any token"),
        ("a: &x [*x]\n", "not valid YAML"),
    ],
)
def test_yaml_errors_in_a_config_file_are_one_line(tmp_path, capsys, text, what):
    conf = tmp_path / "bad.yaml"
    conf.write_text(text)
    assert main(["--config", str(conf), f"output_dir={tmp_path / 'o'}"]) == 2
    err = one_line_error(capsys)
    assert "is not valid YAML" in err and what in err


@pytest.mark.parametrize(
    "args, what",
    [
        (["output_dir=/proc/x/y"], "cannot be created"),
        ([f"output_dir=/tmp/{'n' * 300}"], "cannot be created"),
        ([f"domains=[{'d' * 100_000}]"], "unknown domain"),
        (["llm.api_key=[K]", "ray.address=auto"], "api_key"),
    ],
)
def test_bad_paths_and_huge_values_are_short_errors(tmp_path, capsys, args, what):
    assert main([*args, "progress=false"]) == 2
    err = one_line_error(capsys)
    assert what in err and len(err) < 600 and "[K]" not in err


def test_resume_skips_records_with_wrong_types(tmp_path):
    good = SweepRecord("mock", "create_task_1", 0, reward=1.0, messages=[{"role": "user", "content": "hi"}]).to_json()
    lines = [
        good,
        {**good, "messages": "notalist"},
        {**good, "reward": "nan"},
        {**good, "reward": float("nan")},
        {**good, "steps": "3"},
    ]
    (tmp_path / EPISODES_FILE).write_text("".join(json.dumps(x) + "\n" for x in lines))
    with EpisodeStore(tmp_path) as store:
        assert store.corrupt_lines == 4
    assert [r.reward for r in iter_records(tmp_path)] == [1.0]


def test_a_partly_transcribed_sweep_writes_no_results_file_and_says_why(tmp_path):
    from rollout.sweep.exports import export_sweep

    with_messages = SweepRecord(
        "mock",
        "create_task_1",
        0,
        reward=1.0,
        messages=[{"role": "user", "content": "hi"}],
        termination="user_stop",
        reward_info={"reward": 1.0},
    )
    without = SweepRecord("mock", "create_task_1", 1, reward=1.0, termination="user_stop", reward_info={"reward": 1.0})
    paths, why = export_sweep(tmp_path, [with_messages, without])
    assert paths == [] and "1 scored episode(s) have no transcript" in why
    assert not list(tmp_path.glob("tau2_results*"))


def test_the_printed_summary_stays_readable_at_1000_samples():
    from rollout.sweep.metrics import format_table, summarize

    records = [SweepRecord("mock", "t", k, reward=float(k % 2)) for k in range(1000)]
    summary = summarize(records, num_samples=1000)
    assert len(summary["all"]["pass_hat_k"]) == 1000  # summary.json keeps every k
    table = format_table(summary)
    assert max(len(line) for line in table.splitlines()) < 400 and "pass^1000" in table and "pass^3 " not in table


def test_an_unreachable_ray_head_is_a_bounded_error(tmp_path):
    """In a fresh process (this one may already be connected to a Ray)."""
    import subprocess
    import sys

    start = time.monotonic()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "rollout",
            "sweep",
            "ray.address=127.0.0.1:9",
            "llm.scripted=oracle",
            "domains=[mock]",
            "max_tasks=1",
            f"output_dir={tmp_path / 'o'}",
            "progress=false",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1 and "cannot be reached" in p.stderr, p.stderr[-2000:]
    assert time.monotonic() - start < 60


def test_aenv_cluster_start_is_bounded_by_startup_timeout(oracle_server):
    """The api-service is down (nothing listens): the SDK would retry for ~17 minutes."""
    from rollout.agent.episode import EpisodeSpec, check_episode
    from rollout.agent.runner import EpisodeRunner
    from tests.helpers import scripted_config

    cfg = scripted_config(
        oracle_server,
        extra=["env.backend=aenv", "env.aenv.system_url=http://127.0.0.93", "env.aenv.api_key=t", "env.aenv.startup_timeout_s=3"],
    )

    async def one():
        async with EpisodeRunner(cfg, slots=1) as runner:
            return await runner.run(check_episode(EpisodeSpec("mock", "create_task_1", solo=True), cfg))

    start = time.monotonic()
    result = asyncio.run(one())
    assert time.monotonic() - start < 30
    assert result.failure.failure_class.value == "env_error" and "startup_timeout_s=3" in result.failure.message


def test_the_env_modules_reward_is_no_number_after_a_user_simulator_failure(server):
    """AEnvironment's reward route answers the failure and `total_reward: null`, never 0.0."""
    from rollout.env.aenv.state import Tau2EnvState

    state = Tau2EnvState({"TAU2_USER_LLM": "u", "TAU2_USER_LLM_API_BASE": server.url})
    server.set_faults(mode="http_500", count=-1, role="user")

    async def play():
        opening = await state.reset(domain="airline", task_id="12", solo=False, user_llm={"max_retries": 0})
        return opening, await state.reward()

    opening, reward = asyncio.run(play())
    assert opening["failure"]["class"] == "user_sim_error"
    assert reward["total_reward"] is None and reward["failure"]["class"] == "user_sim_error"


def test_the_results_line_lists_only_what_was_written(tmp_path, capsys):
    from rollout.cli import main

    args = [
        "domains=[mock]",
        "max_tasks=1",
        f"output_dir={tmp_path}",
        "progress=false",
        "transcripts=false",
        "llm.scripted=oracle",
    ]
    assert main(["sweep", *args]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("results:"))
    assert ", ," not in line and "tau2_results" not in line and "no tau2 Results file" in out
