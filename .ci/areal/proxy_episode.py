"""One tau2 episode through AReaL 1.0.4's own proxy workflow, on a CPU, against the scripted server.

    SIDE_PY .ci/areal/proxy_episode.py PROJECT_PATH

What is AReaL's own code here (nothing of it is patched):
  * load_expr_config(conf/areal_tau2.yaml) and launch/areal_train.py's WORKFLOW / workflow_kwargs();
  * RemoteInfEngine._resolve_workflow: "rollout.areal.Tau2Agent" -> OpenAIProxyWorkflow(mode=inline)
    (group_size=1: one episode per call, not the YAML's n_samples=8);
  * the proxy rollout server (`python -m areal.experimental.openai.proxy.proxy_rollout_server`, a
    subprocess as the scheduler forks it), set up as RolloutController.start_proxy does:
    /create_engine (engine class by import path, config=config.rollout), /call initialize(addr=...);
    inside it ArealOpenAI: chat template -> token ids, engine.agenerate, sglang's qwen25 parser
    -> tool_calls, the interaction cache, rewards, export;
  * OpenAIProxyWorkflow.arun_episode: grant_capacity, start_session, Tau2Agent.run(data,
    base_url=proxy, api_key=session key, http_client=AReaL's), set_last_reward, export_interactions;
    then the executor's InteractionWithTokenLogpReward.to_tensor_dict -> concat_padded_tensors.
Not AReaL's: (1) `ScriptedServerEngine` below stands in for RemoteSGLangEngine (SGLang needs a GPU);
(2) a tiny byte-level tokenizer built here (the hub is unreachable); (3) the scripted server plays
the model (oracle) and the user simulator (rollout/scripted). The user simulator's requests go
straight to the scripted server; the agent's go agent -> AReaL proxy -> ArealOpenAI -> engine
double -> scripted server. Two proxy configurations, each its own proxy server process:

  1. AReaL's defaults of conf/areal_tau2.yaml (chat_template_type hf, export individual): episode 1
     (oracle) must be rewarded 1.0, episode 2 (the agent closes at once) 0.0, each equal to tau2's
     evaluator result inside Tau2Agent;
  2. chat_template_type=concat, export_style=concat, replies shaped as real models shape them (a
     sentence before some tool calls, `""` content beside others: the scripted server's `mixed`
     reply style): AReaL's interaction cache must link every completion to its parent (no "not a
     strict prefix" in the proxy's log, exactly one leaf exported: the whole episode as one
     training sequence), with tau2's reward 1.0 on it.

Exit status 1 on any failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = {"domain": "airline", "task_id": "12"}
_BLOCK = re.compile(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>\n", re.S)
# The chat template renders each message (and the tool list) as JSON between Qwen's markers, so the
# double can read the conversation back from the prompt tokens exactly. A tiny model's template.
CHAT_TEMPLATE = (
    "{%- if tools %}<|im_start|>tools\n{{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m | tojson }}<|im_end|>\n{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ScriptedServerEngine:
    """Stands in for AReaL's RemoteSGLangEngine in the proxy rollout server: SGLang needs a GPU.

    What the proxy server and ArealOpenAI use of an InferenceEngine: `ScriptedServerEngine(config)`
    (config = InferenceEngineConfig: tokenizer_path, agent), `.config`, `initialize(addr="host:port")`
    (here: the scripted server's address), `agenerate(ModelRequest) -> ModelResponse`, `destroy()`.
    `agenerate` decodes the prompt tokens back to the messages and tools (CHAT_TEMPLATE), asks the
    scripted server's /v1/chat/completions, and returns the reply as a Qwen model emits it: its
    text, then one `<tool_call>\\n{"name", "arguments"}\\n</tool_call>` block per call, then EOS.
    Logprobs are 0.0 and the weight version 0 (no model).
    """

    def __init__(self, config):
        self.config = config
        self.url = None

    def initialize(self, addr: str | None = None, **_):
        self.url = f"http://{addr}/v1/chat/completions"

    def destroy(self):
        pass

    def get_version(self) -> int:
        return 0

    async def agenerate(self, req):
        import httpx
        from areal.api import ModelResponse

        start = time.monotonic()
        tok = req.tokenizer
        body = {"model": "areal-proxy", "messages": [], "max_tokens": req.gconfig.max_new_tokens}
        for role, payload in _BLOCK.findall(tok.decode(req.input_ids)):
            if role == "tools":
                body["tools"] = json.loads(payload)
            elif role == "assistant" and not payload.startswith("{"):  # concat mode: the model's own output
                body["messages"].append(_parse_output(payload))
            else:
                body["messages"].append(json.loads(payload))
        async with httpx.AsyncClient(timeout=120, trust_env=False) as client:
            resp = await client.post(self.url, json=body)
            resp.raise_for_status()
        message = resp.json()["choices"][0]["message"]
        parts = [message["content"]] if message.get("content") else []
        for call in message.get("tool_calls") or []:
            fn = call["function"]
            parts.append(
                "<tool_call>\n" + json.dumps({"name": fn["name"], "arguments": json.loads(fn["arguments"])}) + "\n</tool_call>"
            )
        out = tok.encode("\n".join(parts), add_special_tokens=False) + [tok.eos_token_id]
        return ModelResponse(
            input_tokens=list(req.input_ids),
            output_tokens=out,
            output_logprobs=[0.0] * len(out),
            output_versions=[0] * len(out),
            stop_reason="stop",
            tokenizer=tok,
            latency=time.monotonic() - start,
            ttft=time.monotonic() - start,
        )


def _parse_output(text: str) -> dict:
    """An assistant message from output as `agenerate` writes it (text, then <tool_call> blocks):
    AReaL's concat prompts carry the model's output tokens instead of a rendering of the message."""
    content, *blocks = text.split("<tool_call>\n")
    calls = [json.loads(b.split("\n</tool_call>")[0]) for b in blocks]
    return {
        "role": "assistant",
        "content": content.strip(),
        "tool_calls": [
            {"id": f"call_{i}", "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
            for i, c in enumerate(calls)
        ],
    }


def build_tokenizer(path: str) -> str:
    """A byte-level tokenizer (256 byte tokens, no merges: any text round-trips) + CHAT_TEMPLATE."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(path)
    return path


def load_config(tmp: str, tokenizer: str, user_url: str, extra: tuple[str, ...] = ()):
    """conf/areal_tau2.yaml through AReaL's load_expr_config, as launch/areal_train.py loads it."""
    from areal.api.cli_args import PPOConfig, load_expr_config

    from rollout.scripted.endpoints import USER_MODEL

    @dataclass
    class Tau2PPOConfig(PPOConfig):
        rollout_conf: dict = field(default_factory=dict)

    overrides = [
        f"actor.path={tokenizer}",
        f"cluster.fileroot={tmp}/areal",
        f"cluster.name_resolve.nfs_record_root={tmp}/nr",
        f"rollout_conf.user_llm.base_url={user_url}",
        f"rollout_conf.user_llm.model={USER_MODEL}",
        # byte tokens: an airline prompt is ~4x longer than with Qwen's tokenizer (16384 in the YAML)
        "rollout.agent.engine_max_tokens=200000",
        *extra,
    ]
    config, _ = load_expr_config(["--config", str(HERE.parents[1] / "conf" / "areal_tau2.yaml"), *overrides], Tau2PPOConfig)
    return config


def launch_proxy(tmp: str) -> tuple[subprocess.Popen, str]:
    """AReaL's proxy rollout server as a subprocess, as the scheduler forks it (started first: its imports take a while)."""
    with socket.socket() as s:  # a free loopback port (importing areal.utils.network would delay the launch)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}  # for the double
    with open(f"{tmp}/proxy.log", "w") as log:  # each configuration's proxy writes its own log
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "areal.experimental.openai.proxy.proxy_rollout_server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--experiment-name",
                "tau2-ci",
                "--trial-name",
                "proxy",
                "--role",
                "proxy",
                "--worker-index",
                "0",
                "--nfs-record-root",
                f"{tmp}/nr",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return proc, f"http://127.0.0.1:{port}"


def configure_proxy(proc: subprocess.Popen, addr: str, tmp: str, config, scripted_addr: str) -> None:
    """Give the proxy its engine as RolloutController.start_proxy does: /create_engine, then /call initialize."""
    import httpx
    from areal.infra.rpc.serialization import serialize_value

    deadline = time.monotonic() + 600
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"proxy server did not come up; log:\n{Path(tmp, 'proxy.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{addr}/health", timeout=2, trust_env=False).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    for path, payload in (
        (
            "create_engine",
            {"engine": "proxy_episode.ScriptedServerEngine", "init_kwargs": serialize_value({"config": config.rollout})},
        ),
        ("call", {"method": "initialize", "kwargs": serialize_value({"addr": scripted_addr})}),
    ):
        r = httpx.post(f"{addr}/{path}", json=payload, timeout=300, trust_env=False)
        if r.status_code != 200:
            raise RuntimeError(f"proxy /{path}: HTTP {r.status_code} {r.text[:500]}")


def check(name: str, ok: bool, detail: str, failures: list[str]) -> None:
    print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    if not ok:
        failures.append(name)


async def episode(workflow, engine, task_id: int):
    """One arun_episode as AReaL's WorkflowExecutor runs it, plus what Tau2Agent returned."""
    from areal.infra import workflow_context
    from areal.infra.workflow_context import WorkflowContext
    from areal.utils.data import concat_padded_tensors

    agent, results = workflow.agent, []
    inner = agent.run_episode

    async def recording(*args, **kwargs):  # a spy: keeps Tau2Agent's EpisodeResult (tau2's evaluation)
        results.append(await inner(*args, **kwargs))
        return results[-1]

    agent.run_episode = recording
    try:
        workflow_context.set(WorkflowContext(is_eval=False, task_id=task_id))
        interactions = await workflow.arun_episode(engine, dict(DATA))
    finally:
        del agent.run_episode
    tensors = concat_padded_tensors([v.to_tensor_dict() for v in interactions.values()])
    return interactions, tensors, results[0]


def report(label: str, expected: float, interactions, tensors, result, requests: list[dict], failures: list[str]) -> None:
    """Checks of one episode. `requests`: what the scripted server got during it. The engine double
    passes only text to AReaL, so structured tool_calls in the agent's history were parsed by AReaL."""
    last = list(interactions.values())[-1]
    history = [r["body"]["messages"] for r in requests if r["role"] == "agent"][-1]
    calls = sum(len(m.get("tool_calls") or []) for m in history if m.get("role") == "assistant")
    rewards = tensors["rewards"].tolist()
    print(
        f"{label}: {len(interactions)} completions through AReaL's proxy, {calls} tool calls parsed by AReaL, "
        f"{int(tensors['loss_mask'].sum())} trainable tokens; tau2: reward={result.reward} "
        f"termination={result.termination} failure={result.failure}"
    )
    check(f"{label}: tau2 evaluator reward", result.reward == expected, f"{result.reward} (expected {expected})", failures)
    check(
        f"{label}: reward AReaL recorded (last interaction)",
        last.reward == result.reward,
        f"{last.reward} == Tau2Agent's {result.reward}",
        failures,
    )
    check(
        f"{label}: rewards AReaL trains on (tensor dict)",
        all(r == expected for r in rewards),
        f"{len(rewards)} rows, values {sorted(set(rewards))}",
        failures,
    )
    if expected == 1.0:
        check(f"{label}: tool calls went through AReaL's parser", calls > 0, f"{calls}", failures)


def workflow_for(tmp: str, scripted, proxy, proxy_addr: str, extra: tuple[str, ...] = ()):
    """AReaL's workflow around Tau2Agent and its engine, for a proxy configured as the config says."""
    config = load_config(tmp, build_tokenizer(f"{tmp}/tokenizer"), scripted.url, extra)
    configure_proxy(proxy, proxy_addr, tmp, config, scripted.url.removeprefix("http://").removesuffix("/v1"))
    from areal.engine.sglang_remote import RemoteSGLangEngine
    from areal.utils import logging as areal_logging

    from launch.areal_train import WORKFLOW, workflow_kwargs

    engine = RemoteSGLangEngine(config.rollout)  # never initialize()d: only its workflow resolver is used
    engine._engine.logger = areal_logging.getLogger("[RemoteInfEngine Rank 0]")  # initialize() sets it
    kwargs = workflow_kwargs(config.rollout_conf, sampling="train", max_tokens=config.gconfig.max_new_tokens)
    workflow = engine._engine._resolve_workflow(WORKFLOW, kwargs, group_size=1, proxy_addr=proxy_addr)
    return workflow, engine


def defaults_check(tmp: str, scripted, failures: list[str]) -> None:
    """Configuration 1 (see module doc): oracle 1.0, closing at once 0.0."""
    proxy, proxy_addr = launch_proxy(tmp)
    try:
        t0 = time.monotonic()
        workflow, engine = workflow_for(tmp, scripted, proxy, proxy_addr)
        print(
            f"setup {time.monotonic() - t0:.0f}s: {type(workflow).__name__}(mode={workflow.mode!r}) around "
            f"{type(workflow.agent).__name__}, proxy {proxy_addr}, scripted server {scripted.url}"
        )

        async def both():
            t1 = time.monotonic()
            oracle = (*await episode(workflow, engine, 0), list(scripted.requests))
            t2, n = time.monotonic(), len(scripted.requests)
            scripted.set_script(DATA["domain"], DATA["task_id"], [])  # the agent closes at once (as noop)
            noop = (*await episode(workflow, engine, 1), scripted.requests[n:])
            print(f"episodes: oracle {t2 - t1:.1f}s, closing at once {time.monotonic() - t2:.1f}s")
            return oracle, noop

        oracle, noop = asyncio.run(both())
        report("oracle episode", 1.0, *oracle, failures)
        report("closing-at-once episode", 0.0, *noop, failures)
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)


def concat_check(tmp: str, scripted, failures: list[str]) -> None:
    """Configuration 2 (see module doc): every turn linked, one sequence, tau2's reward."""
    scripted.set_script(DATA["domain"], DATA["task_id"], None)
    scripted.set_reply_style("mixed")
    proxy, proxy_addr = launch_proxy(tmp)
    try:
        workflow, engine = workflow_for(
            tmp, scripted, proxy, proxy_addr, ("++rollout.agent.chat_template_type=concat", "rollout.agent.export_style=concat")
        )
        n = len(scripted.requests)
        interactions, tensors, result = asyncio.run(episode(workflow, engine, 2))
        agent = [r for r in scripted.requests[n:] if r["role"] == "agent"]
        shapes = {"text": 0, "empty": 0}
        for r in agent:
            for m in r["body"]["messages"]:
                if m.get("role") == "assistant" and m.get("tool_calls"):
                    shapes["text" if m.get("content") else "empty"] += 1
        log = Path(tmp, "proxy.log").read_text()
        print(
            f"concat episode: {len(agent)} completions, last request shows {shapes} tool-call replies "
            f"(with text / without); {len(interactions)} leaf interaction(s) exported; tau2: reward={result.reward}"
        )
        check(
            "concat: replies mixed text and tool calls, and carried no text",
            shapes["text"] > 0 and shapes["empty"] > 0,
            f"{shapes} (counted over every agent request)",
            failures,
        )
        check(
            "concat: AReaL linked every turn (no 'not a strict prefix')",
            "not a strict prefix" not in log,
            "proxy log clean" if "not a strict prefix" not in log else log[log.index("not a strict prefix") - 300 :][:800],
            failures,
        )
        check(
            "concat: the episode is one training sequence",
            len(interactions) == 1 and len(agent) > 1,
            f"{len(interactions)} leaf of {len(agent)} completions",
            failures,
        )
        rewards = tensors["rewards"].tolist()
        check(
            "concat: its reward is tau2's",
            result.reward == 1.0 and rewards == [1.0],
            f"tensor rewards {rewards}, tau2 {result.reward}",
            failures,
        )
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)


def main(argv: list[str]) -> int:
    if not argv:
        sys.exit("usage: proxy_episode.py PROJECT_PATH")
    project = str(Path(argv[0]).resolve())
    sys.path.insert(0, project)
    from rollout.core.process_env import apply_defaults

    apply_defaults()  # OPENAI_AGENTS_DISABLE_TRACING, LITELLM_LOCAL_MODEL_COST_MAP, ... (inherited by the proxy)
    t0 = time.monotonic()
    from rollout.scripted import ScriptedServer

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="areal-proxy-") as tmp, ScriptedServer("oracle") as scripted:
        for check_fn in (defaults_check, concat_check):
            try:
                check_fn(tmp, scripted, failures)
            except Exception as e:
                failures.append(f"{check_fn.__name__}: {type(e).__name__}: {e}")
                print(f"ERROR {type(e).__name__}: {e}\n--- proxy log tail ---\n{Path(tmp, 'proxy.log').read_text()[-3000:]}")
    print(f"{'FAILED: ' + '; '.join(failures) if failures else 'OK'} ({time.monotonic() - t0:.0f}s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
