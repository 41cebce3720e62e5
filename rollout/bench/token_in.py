"""P11: token-in vs chat capture through the rollout pool, on the templates real models use.

For each template (Qwen3 thinking with vLLM's qwen3 reasoning parser, Qwen3 with
`enable_thinking: false`, Qwen2.5 with a sentence before every tool call), the scripted server
runs in its own process with that model directory and reply shape, answering after a fixed
latency per completion; the same batch (64 episodes in flight on 2 Ray workers, airline, retail
and telecom tasks in groups of 8) runs through a pool with `llm.capture=token_in` (vLLM's
/v1/completions with token-id prompts, the template rendered client-side) and through one with
`llm.capture=token_ids` (vLLM's chat endpoint), alternately, `reps` times. Per run: episodes per
second, the rollout system's CPU per completion (every process on the machine but the model
server's) and the call boundaries that split, per 1,000. Goals: throughput >= 1.0x, CPU per
completion <= 1.1x, token-in 0 splits per 1,000 on every template.
"""

from __future__ import annotations

import time

from rollout.bench.common import episode_config, scripted_process
from rollout.bench.pool_training import LOCAL_RAY, _medians, batch, machine_busy_s

TEMPLATES = {  # name: (scripted model, server reasoning parser, chat_template_kwargs, reply style)
    "qwen3_thinking": ("qwen3", "qwen3", "{}", "text_with_calls"),
    "qwen3_no_thinking": ("qwen3", "qwen3", "{enable_thinking:false}", "text_with_calls"),
    "qwen25_text_before_calls": ("qwen25", None, "{}", "text_with_calls"),
}
GOALS = {"throughput_ratio": 1.0, "cpu_ratio": 1.1, "token_in_split_per_1000": 0.0}


def _pool(url: str, mode: str, template: tuple, in_flight: int):
    from rollout.pool import RolloutPool
    from rollout.scripted.models import model_dir

    model, parser, kwargs, _ = template
    extra = ["sampling=train", f"llm.capture={mode}", f"llm.chat_template_kwargs={kwargs}"]
    if mode == "token_in":
        extra += [f"llm.tokenizer={model_dir(model)}", *([f"llm.reasoning_parser={parser}"] if parser else [])]
    pool = RolloutPool(episode_config(url, *extra), ray={"num_workers": 2, "slots_per_worker": in_flight // 2, **LOCAL_RAY})
    pool.start()
    pool.run(batch(16))  # warm: clients, the tokenizer on both sides
    return pool


def _timed(server, pool, requests) -> dict:
    served0, server0, busy0 = server.completions(), server.cpu_s(), machine_busy_s()
    start = time.perf_counter()
    out = pool.run(requests)
    elapsed = time.perf_counter() - start
    served, server_cpu = server.completions() - served0, server.cpu_s() - server0
    bad = [t.failure for t in out if t.reward != 1.0]
    assert not bad, bad[:3]
    boundaries = sum(t.drift.boundaries for t in out)
    return {
        "eps_per_s": len(out) / elapsed,
        "rollout_ms_per_completion": 1000 * (machine_busy_s() - busy0 - server_cpu) / served,
        "split_per_1000": 1000 * sum(t.drift.split for t in out) / boundaries if boundaries else 0.0,
        "boundaries": boundaries,
    }


def bench_p11(quick: bool = False, in_flight: int = 64, latency: float = 0.5, reps: int = 2) -> dict:
    templates = dict(TEMPLATES)
    if quick:  # a smoke run: one template, tiny sizes
        in_flight, latency, reps = 8, 0.05, 1
        templates = {"qwen3_thinking": TEMPLATES["qwen3_thinking"]}
    requests = batch(in_flight * 2)
    out = {}
    for name, template in templates.items():
        model, parser, _, style = template
        runs: dict[str, list[dict]] = {"token_ids": [], "token_in": []}
        with scripted_process(latency, model=model, reasoning_parser=parser, reply_style=style) as server:
            for _ in range(reps):  # alternate, so drift in the machine's speed hits both alike
                for mode in runs:
                    with _pool(server.url, mode, template, in_flight) as pool:
                        runs[mode].append(_timed(server, pool, requests))
        row: dict = _medians(runs, ("eps_per_s", "rollout_ms_per_completion", "split_per_1000", "boundaries"))
        row["throughput_ratio"] = round(row["token_in"]["eps_per_s"] / row["token_ids"]["eps_per_s"], 3)
        row["cpu_ratio"] = round(row["token_in"]["rollout_ms_per_completion"] / row["token_ids"]["rollout_ms_per_completion"], 3)
        out[name] = row
    return {
        "in_flight": in_flight,
        "latency_s": latency,
        "episodes": len(requests),
        "templates": out,
        "goals": GOALS,
        "throughput_ratio_min": min(r["throughput_ratio"] for r in out.values()),
        "cpu_ratio_max": max(r["cpu_ratio"] for r in out.values()),
        "token_in_split_per_1000_max": max(r["token_in"]["split_per_1000"] for r in out.values()),
    }


__all__ = ["bench_p11"]
