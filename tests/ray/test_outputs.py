"""Results people can use: tau2 Results export, report, AReaL dataset rows, SFT export."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rollout.sweep.run import prepare, run_sweep

AIRLINE_FIRST = ["0", "1", "2", "3", "4"]  # the no-op policy scores 1.0 on 0, 1, 4 and 0.0 on 2, 3


@pytest.fixture(scope="module")
def noop_sweep(ray_cluster, tmp_path_factory):
    from rollout.scripted import ScriptedServer

    out = tmp_path_factory.mktemp("sweep")
    with ScriptedServer("noop", record=False) as server:
        cfg, _ = prepare(
            [
                f"llm.base_url={server.url}",
                "llm.model=a",
                f"user_llm.base_url={server.url}",
                "user_llm.model=u",
                f"output_dir={out}",
                "progress=false",
                "domains=[airline]",
                f"task_ids=[{','.join(AIRLINE_FIRST)}]",
                "num_samples=2",
                "ray.num_workers=1",
            ]
        )
        run_sweep(cfg)
    return out


def tau2_cli(*args, stdin: str = ""):
    return subprocess.run(
        [sys.executable, "-m", "tau2.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )


def test_sweep_writes_tau2_results_that_tau2_rescores_identically(noop_sweep, tmp_path):
    ours = {
        (r["key"]["task_id"], r["key"]["sample"]): r["reward"]
        for r in map(json.loads, (noop_sweep / "episodes.jsonl").read_text().splitlines())
    }
    assert sorted(set(ours.values())) == [0.0, 1.0]  # mixed rewards: the check can fail
    assert (noop_sweep / "tau2_results.json").exists() and (noop_sweep / "tau2_results_airline.json").exists()
    assert os.path.samefile(noop_sweep / "tau2_results.json", noop_sweep / "tau2_results_airline.json")  # one copy
    from tau2.data_model.simulation import Results

    loaded = Results.load(noop_sweep / "tau2_results.json")  # the streamed file is tau2's model
    assert sorted(t.id for t in loaded.tasks) == AIRLINE_FIRST and loaded.info.num_trials == 2
    assert sorted((s.task_id, s.trial) for s in loaded.simulations) == sorted(ours)
    assert not list(noop_sweep.glob(".*.part"))
    p = tau2_cli("evaluate-trajs", str(noop_sweep / "tau2_results.json"), "-o", str(tmp_path))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rescored = json.loads((tmp_path / "updated_tau2_results.json").read_text())
    theirs = {(s["task_id"], s["trial"]): s["reward_info"]["reward"] for s in rescored["simulations"]}
    assert theirs == ours and len(theirs) == 10


def test_failed_episodes_are_exported_as_tau2_records_skipped_samples(ray_cluster, tmp_path):
    """tau2's own compute_metrics on the export gives the summary's tau2-counted figures."""
    from tau2.data_model.simulation import Results
    from tau2.metrics.agent_metrics import compute_metrics

    from rollout.scripted import Faults, ScriptedServer

    with ScriptedServer("noop", record=False, faults=Faults(mode="http_500", count=2, role="user")) as server:
        cfg, _ = prepare(
            [
                f"llm.base_url={server.url}",
                "llm.model=a",
                f"user_llm.base_url={server.url}",
                "user_llm.model=u",
                "user_llm.max_retries=0",
                f"output_dir={tmp_path}",
                "progress=false",
                "domains=[airline]",
                "task_ids=[0,1,4]",
                "num_samples=2",
                "ray.num_workers=1",
                "ray.slots_per_worker=1",
                "retry.max_attempts=1",
            ]
        )
        summary = run_sweep(cfg).summary
    counted = summary["all"]["tau2_counting"]
    assert summary["all"]["failed"] == 2 and summary["all"]["mean_reward"] == 1.0 != counted["mean_reward"]
    results = Results.load(tmp_path / "tau2_results.json")
    skipped = [s for s in results.simulations if s.skipped]
    assert len(results.simulations) == 6 and len(skipped) == 2
    assert all(s.reward_info.reward == 0.0 and not s.messages for s in skipped)
    assert {s.reward_info.info["failure"]["class"] for s in skipped} == {"user_sim_error"}
    metrics = compute_metrics(results)
    assert metrics.avg_reward == pytest.approx(counted["mean_reward"])
    assert {str(k): v for k, v in metrics.pass_hat_ks.items()} == pytest.approx(counted["pass_hat_k"])
    p = tau2_cli("evaluate-trajs", str(tmp_path / "tau2_results.json"), "-o", str(tmp_path / "rescored"))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rescored = json.loads((tmp_path / "rescored" / "updated_tau2_results.json").read_text())
    assert sorted(s["reward_info"]["reward"] for s in rescored["simulations"]) == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]


def test_tau2_view_reads_the_export(noop_sweep):
    # tau2 view is interactive: load the file, show the metrics, show simulation 1, exit
    p = tau2_cli("view", "--file", str(noop_sweep / "tau2_results.json"), stdin="1\n1\n2\n3\n1\n\n5\n")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Loaded 10 simulations" in p.stdout and "Average Reward" in p.stdout


def test_report_has_every_plot_and_renders_in_chromium(noop_sweep, tmp_path):
    import matplotlib.image as mpimg

    from rollout.sweep.report import PLOTS, write_report

    report = noop_sweep / "report"
    assert (report / "report.html").exists() and (report / "report.md").exists()  # written by the sweep
    for name in PLOTS:
        pixels = mpimg.imread(report / f"{name}.png")
        assert pixels.std() > 0.01, name  # a drawn chart, not a blank canvas
    page = write_report([noop_sweep, noop_sweep], out=tmp_path / "compare")  # two runs side by side
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "<h1>Sweep report</h1>" in dom.stdout and dom.stdout.count('src="data:image/png;base64,') == len(PLOTS)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()], capture_output=True, timeout=120
    )
    assert shot.exists() and mpimg.imread(shot).std() > 0.01


@pytest.mark.parametrize("domain", ["airline", "retail", "telecom"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_dataset_rows_match_tau2_splits(domain, split, tmp_path):
    from datasets import load_dataset
    from tau2.registry import registry

    out = tmp_path / "rows.jsonl"
    p = subprocess.run(
        [sys.executable, "-m", "rollout", "dataset", f"domain={domain}", f"split={split}", f"out={out}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    rows = load_dataset("json", data_files=str(out), split="train")
    assert list(rows["task_id"]) == list(registry.get_task_splits_loader(domain)()[split])
    assert set(rows["domain"]) == {domain} and set(rows["split"]) == {split}


def test_dataset_errors_and_overrides(tmp_path):
    from rollout.areal.dataset import dataset_rows
    from rollout.core.failures import InvalidInput

    with pytest.raises(InvalidInput, match="unknown split 'dev'"):
        dataset_rows("airline", "dev")
    with pytest.raises(InvalidInput, match="unknown key 'sampling.temprature'"):
        dataset_rows("airline", "test", overrides={"sampling": {"temprature": 0.3}})
    rows = dataset_rows("airline", "test", min_rows=50, overrides={"sampling": "eval"})
    assert len(rows) == 60 and rows[0]["overrides"] == {"sampling": "eval"}


def test_sft_export_is_openai_chat_format(noop_sweep, tmp_path):
    from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
    from pydantic import TypeAdapter

    out = tmp_path / "sft.jsonl"
    p = subprocess.run(
        [sys.executable, "-m", "rollout", "sft", f"output_dir={noop_sweep}", f"out={out}", "min_reward=1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    examples = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(examples) == 6 and all(e["metadata"]["reward"] == 1.0 for e in examples)  # tasks 0, 1, 4 x 2 samples
    messages, tools = TypeAdapter(list[ChatCompletionMessageParam]), TypeAdapter(list[ChatCompletionToolParam])
    for e in examples:
        assert messages.validate_python(e["messages"]) and tools.validate_python(e["tools"])
        assert [m["role"] for m in e["messages"][:3]] == ["system", "assistant", "user"]
        assert json.loads(json.dumps(e)) == e


def test_sft_export_keeps_tool_calls_in_order(oracle_server, tmp_path):
    from rollout.agent.episode import EpisodeSpec
    from rollout.sweep.records import SweepRecord
    from rollout.sweep.sft import to_chat
    from tests.helpers import run_specs, scripted_config

    [r] = run_specs(scripted_config(oracle_server), [EpisodeSpec("airline", "12", solo=False)])
    record = SweepRecord.from_result(r)
    chat = to_chat(record)["messages"]
    calls = [m for m in chat if m.get("tool_calls")]
    results = [m for m in chat if m["role"] == "tool"]
    assert len(calls) == len(results) == 5
    assert [c["tool_calls"][0]["id"] for c in calls] == [t["tool_call_id"] for t in results]
    assert json.loads(calls[0]["tool_calls"][0]["function"]["arguments"]) == {"reservation_id": "YAX4DR"}


def test_areal_example_config_gives_valid_workflow_kwargs():
    from omegaconf import OmegaConf

    from launch.areal_train import workflow_kwargs
    from rollout.areal import Tau2Agent

    conf = OmegaConf.to_container(OmegaConf.load(Path(__file__).resolve().parents[2] / "conf/areal_tau2.yaml").rollout_conf)
    train = workflow_kwargs(conf, sampling="train", max_tokens=4096)
    evaluation = workflow_kwargs(conf, sampling="eval")
    assert Tau2Agent(**train).config().sampling.temperature == 1.0
    assert Tau2Agent(**train).config().sampling.max_tokens == 4096
    assert Tau2Agent(**evaluation).config().sampling.temperature == 0.0
    assert Tau2Agent(**train).config().user_llm.model == "Qwen/Qwen2.5-72B-Instruct"
