"""The scripted server's token interfaces over HTTP: vLLM's /v1/completions with a token-id prompt
and SGLang's /generate, on real tau2 requests, against the chat endpoint of the same server, with
the Qwen2.5 and Qwen3 model directories."""

import math

import httpx
import pytest
from transformers import AutoTokenizer

from rollout.env.domains import load_domain
from rollout.scripted import ScriptedServer
from rollout.scripted import chat_tokens as ct
from rollout.scripted.models import MODELS, model_dir
from rollout.scripted.prompt_parse import parse_prompt
from tests.helpers import run_domain, scripted_config

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "cancel_reservation",
            "description": "Cancel a reservation.",
            "parameters": {
                "type": "object",
                "properties": {"reservation_id": {"type": "string"}},
                "required": ["reservation_id"],
            },
        },
    }
]
START = [{"role": "system", "content": "You are a test agent."}, {"role": "user", "content": "Cancel 4WQ150."}]
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "cancel_reservation", "arguments": '{"reservation_id": "4WQ150"}'}}
    ],
}
TEXT = {"role": "assistant", "content": "Your reservation is cancelled."}


@pytest.fixture(scope="module")
def tau2_requests():
    """Every request of a real airline episode (oracle agent, scripted user), as tau2 sent them."""
    with ScriptedServer("oracle") as server:
        assets = load_domain("airline")
        task = next(t for t in assets.task_ids("base") if len(assets.task(t).evaluation_criteria.actions or []) >= 3)
        [result] = run_domain(scripted_config(server), "airline", [task], solo=False)
        assert result.reward == 1.0
        return [(e["role"], e["body"]) for e in server.requests]


def test_transformers_renders_tau2_requests_as_the_server_does(tau2_requests):
    for name in MODELS:
        tok = AutoTokenizer.from_pretrained(str(model_dir(name)))
        for _, body in tau2_requests:
            for kwargs in ({}, {"enable_thinking": False}):
                ours = ct.render(body["messages"], body.get("tools"), model=name, chat_template_kwargs=kwargs)
                theirs = tok.apply_chat_template(
                    ct.conversation(body["messages"]),
                    tools=ct.tool_dicts(body.get("tools")),
                    tokenize=False,
                    add_generation_prompt=True,
                    **kwargs,
                )
                assert ours == theirs
                ids = tok(ours, add_special_tokens=False)["input_ids"]
                assert ct.encode(ours, name) == ids
                back = parse_prompt(tok.decode(ids))  # the token endpoints' read-back
                assert (
                    ct.render(back["messages"], back["tools"], model=name, chat_template_kwargs=back["chat_template_kwargs"])
                    == ours
                )
                assert [m.get("content") or "" for m in back["messages"] if m["role"] in ("user", "tool")] == [
                    m.get("content") or "" for m in body["messages"] if m["role"] in ("user", "tool")
                ]


@pytest.mark.parametrize("model,parser", [("qwen25", None), ("qwen3", "qwen3"), ("qwen3", None)])
def test_token_endpoints_play_the_chat_endpoints_player(tau2_requests, model, parser):
    """For every tau2 request: the chat endpoint's prompt ids sent to /v1/completions and to
    /generate get the same completion (ids, text, logprobs) from the same player; each answer is
    recorded with its endpoint and what it sent."""
    with ScriptedServer("oracle", model=model, reasoning_parser=parser) as server:
        base = server.url.removesuffix("/v1")
        for role, body in tau2_requests:
            chat = httpx.post(
                server.url + "/chat/completions", json={**body, "return_token_ids": True, "logprobs": True}, timeout=120
            )
            assert chat.status_code == 200, chat.text
            chat = chat.json()
            prompt, choice = chat["prompt_token_ids"], chat["choices"][0]
            comp = httpx.post(
                server.url + "/completions",
                json={"model": "m", "prompt": prompt, "max_tokens": 4096, "logprobs": 1, "return_token_ids": True},
                timeout=120,
            ).json()
            gen = httpx.post(
                base + "/generate",
                json={"input_ids": prompt, "sampling_params": {"max_new_tokens": 4096}, "return_logprob": True},
                timeout=120,
            ).json()
            c = comp["choices"][0]
            assert c["prompt_token_ids"] == prompt and c["token_ids"] == choice["token_ids"] == gen["output_ids"], role
            assert c["token_ids"][-1] == ct.eos_id(model) and c["finish_reason"] == "stop" and c["stop_reason"] is None
            assert c["text"] == gen["text"] == ct.decode(c["token_ids"][:-1], model=model)
            chat_lps = [e["logprob"] for e in choice["logprobs"]["content"]]
            assert c["logprobs"]["token_logprobs"] == chat_lps == [t[0] for t in gen["meta_info"]["output_token_logprobs"]]
            assert [t[1] for t in gen["meta_info"]["output_token_logprobs"]] == gen["output_ids"]
            assert gen["meta_info"]["finish_reason"] == {"type": "stop", "matched": ct.eos_id(model)}
            assert gen["meta_info"]["prompt_tokens"] == len(prompt) and gen["meta_info"]["completion_tokens"] == len(
                gen["output_ids"]
            )
            # the message a client parsing the completion with the server's parsers gets is the chat endpoint's
            think = ct.thinking(model, {})
            parsed = ct.parse_completion(c["text"], tools=bool(body.get("tools")), reasoning_parser=parser, think=think)
            assert (parsed["content"], parsed["reasoning"]) == (choice["message"]["content"], choice["message"]["reasoning"])
            assert [tc["function"] for tc in parsed["tool_calls"]] == [tc["function"] for tc in choice["message"]["tool_calls"]]
        by_endpoint = {}
        for e in server.requests:
            by_endpoint.setdefault(e["endpoint"], []).append(e)
        assert {k: len(v) for k, v in by_endpoint.items()} == {k: len(tau2_requests) for k in ("chat", "completions", "generate")}
        for chat_e, comp_e, gen_e in zip(by_endpoint["chat"], by_endpoint["completions"], by_endpoint["generate"]):
            assert chat_e["recognition"]["key"] == comp_e["recognition"]["key"] == gen_e["recognition"]["key"]
            assert chat_e["sent_tokens"] == comp_e["sent_tokens"] == gen_e["sent_tokens"]


@pytest.fixture(scope="module")
def qwen3():
    with ScriptedServer("oracle", model="qwen3", reasoning_parser="qwen3") as server:
        yield server


def _prompt(model, messages=START, kwargs=None):
    return ct.render_prompt(messages, TOOLS, model=model, chat_template_kwargs=kwargs)[1]


def test_vllm_completions_response_shape_logprobs_and_cuts(qwen3):
    prompt = _prompt("qwen3")
    qwen3.inject("any", CALL)
    r = httpx.post(
        qwen3.url + "/completions",
        json={"model": "q", "prompt": [prompt], "max_tokens": 200, "logprobs": 2, "return_token_ids": True},
        timeout=120,
    ).json()
    assert list(r) == [
        "id", "object", "created", "model", "choices", "service_tier", "system_fingerprint", "usage",
        "kv_transfer_params", "ec_transfer_params", "metrics",
    ]  # fmt: skip
    assert r["object"] == "text_completion" and r["id"].startswith("cmpl-")
    c = r["choices"][0]
    assert list(c) == [
        "index", "text", "logprobs", "finish_reason", "stop_reason", "token_ids", "prompt_logprobs", "prompt_token_ids",
        "routed_experts", "weight_versions",
    ]  # fmt: skip
    ids = c["token_ids"]
    assert ids == ct.completion(CALL, model="qwen3", think=True)[1] and c["prompt_token_ids"] == prompt
    assert c["text"].startswith("<think>\n") and "<|im_end|>" not in c["text"]
    lp = c["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(lp["text_offset"]) == len(ids)
    assert lp["tokens"][-1] == "<|im_end|>" and lp["text_offset"][0] == 0
    assert all(len(top) <= 3 and top[tok] == v for tok, v, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]))
    assert all(math.isfinite(v) and v <= 0 for v in lp["token_logprobs"])
    assert r["usage"] == {
        "prompt_tokens": len(prompt),
        "total_tokens": len(prompt) + len(ids),
        "completion_tokens": len(ids),
        "completion_tokens_details": None,
    }
    for max_tokens, finish, kept in ((5, "length", 5), (len(ids), "stop", len(ids))):  # the EOS as the cap-th token: stop
        qwen3.inject("any", CALL)
        c = httpx.post(
            qwen3.url + "/completions", json={"prompt": prompt, "max_tokens": max_tokens, "return_token_ids": True}, timeout=120
        ).json()["choices"][0]
        assert (c["finish_reason"], c["token_ids"], c["logprobs"]) == (finish, ids[:kept], None)
    qwen3.inject("any", TEXT)
    c = httpx.post(qwen3.url + "/completions", json={"prompt": prompt, "return_token_ids": True}, timeout=120).json()["choices"][
        0
    ]
    assert c["finish_reason"] == "length" and len(c["token_ids"]) == 16  # vLLM's default max_tokens
    qwen3.inject("any", TEXT)
    c = httpx.post(
        qwen3.url + "/completions",
        json={"prompt": prompt, "max_tokens": 300, "stop": ["cancelled"], "return_token_ids": True, "logprobs": 0,
              "return_tokens_as_token_ids": True},
        timeout=120,
    ).json()["choices"][0]  # fmt: skip
    assert c["finish_reason"] == "stop" and c["stop_reason"] == "cancelled" and c["text"].endswith("Your reservation is ")
    assert "cancelled" in ct.decode(c["token_ids"], model="qwen3") and c["token_ids"][-1] != ct.eos_id("qwen3")
    assert c["logprobs"]["tokens"] == [f"token_id:{t}" for t in c["token_ids"]]
    assert all(len(top) == 1 for top in c["logprobs"]["top_logprobs"])


def test_sglang_generate_response_shape(qwen3):
    base = qwen3.url.removesuffix("/v1")
    prompt = _prompt("qwen3", kwargs={"enable_thinking": False})
    qwen3.inject("any", TEXT)
    r = httpx.post(
        base + "/generate",
        json={"input_ids": prompt, "sampling_params": {"max_new_tokens": 64, "temperature": 1.0}, "return_logprob": True,
              "top_logprobs_num": 2, "return_text_in_logprobs": True, "logprob_start_len": len(prompt) - 2, "rid": "r-1"},
        timeout=120,
    ).json()  # fmt: skip
    assert list(r) == ["text", "output_ids", "meta_info"]
    assert (
        r["text"] == "Your reservation is cancelled." and r["output_ids"] == ct.completion(TEXT, model="qwen3")[1]
    )  # thinking off
    meta = r["meta_info"]
    assert meta["id"] == "r-1" and meta["weight_version"] == "default" and meta["finish_reason"]["matched"] == ct.eos_id("qwen3")
    assert [t[2] for t in meta["output_token_logprobs"]][-1] == "<|im_end|>" and meta["output_token_logprobs_length"] == len(
        r["output_ids"]
    )
    assert len(meta["input_token_logprobs"]) == 2 and all(len(top) == 2 for top in meta["output_top_logprobs"])
    qwen3.inject("any", TEXT)
    r = httpx.post(base + "/generate", json={"input_ids": [prompt], "sampling_params": {"max_new_tokens": 3}}, timeout=120).json()
    assert (
        isinstance(r, list)
        and r[0]["meta_info"]["finish_reason"] == {"type": "length", "length": 3}
        and len(r[0]["output_ids"]) == 3
    )
    assert "output_token_logprobs" not in r[0]["meta_info"]
    qwen3.inject("any", TEXT)
    r = httpx.post(base + "/generate", json={"input_ids": prompt, "return_logprob": True}, timeout=120).json()
    assert all(t[2] is None for t in r["meta_info"]["output_token_logprobs"]) and r["meta_info"]["input_token_logprobs"] == []


@pytest.mark.parametrize(
    "path,body,message",
    [
        ("/v1/completions", {"prompt": []}, "'prompt' must be a non-empty list of token ids"),
        ("/v1/completions", {"prompt": [999999]}, "token id 999999 is out of vocabulary"),
        ("/generate", {"input_ids": "abc"}, "'input_ids' must be"),
        ("/v1/completions", {"prompt": [1, 2, 3]}, "prompt is not a chat template render"),
    ],
)
def test_bad_token_requests_are_400_with_a_reason(qwen3, path, body, message):
    r = httpx.post(qwen3.url.removesuffix("/v1") + path, json=body, timeout=120)
    assert r.status_code == 400 and message in r.json()["error"]["message"]


def test_reply_styles_and_drift_reach_the_token_endpoints():
    """A sentence before the call (reply style) and compact JSON (drift) are written on the token
    endpoints too, as on the chat endpoint."""
    with ScriptedServer("oracle", reply_style="text_with_calls") as server:
        server.set_script("", "", [{"tool": "cancel_reservation", "arguments": {"reservation_id": "4WQ150"}}])
        server.set_tokens(drift="compact_json")
        prompt = _prompt("qwen25")
        c = httpx.post(server.url + "/completions", json={"prompt": prompt, "max_tokens": 500}, timeout=120).json()["choices"][0]
        assert c["text"] == (
            'Let me take care of that for you.\n<tool_call>\n{"name":"cancel_reservation","arguments":{"reservation_id":"4WQ150"}}\n</tool_call>'
        )
        chat = httpx.post(
            server.url + "/chat/completions", json={"messages": START, "tools": TOOLS, "return_token_ids": True}, timeout=120
        ).json()
        assert chat["choices"][0]["token_ids"][:-1] == ct.encode(c["text"])


def test_token_requests_honour_x_rollout_headers(qwen3):
    """The role header turns a prompt the server would read as the agent's into the user's, as on
    the chat endpoint; the headers are recorded."""
    prompt = _prompt("qwen3")
    for headers, role in (({}, "agent"), ({"X-Rollout-Role": "user"}, "user")):
        r = httpx.post(qwen3.url + "/completions", json={"prompt": prompt, "max_tokens": 300}, headers=headers, timeout=120)
        assert r.status_code == 200
        entry = qwen3.requests[-1]
        assert entry["endpoint"] == "completions" and entry["role"] == role and entry["recognition"]["role"] == role
        assert entry["headers"].get("x-rollout-role") == headers.get("X-Rollout-Role")


def test_a_partial_completion_is_continued_exactly_or_refused(qwen3):
    """A prompt that ends with the first ids of the model's reply gets the rest of it, with the
    logprobs the whole reply has, on both routes; max_tokens counts the rest only. A tail that
    is not how the reply begins is refused, naming the first id that differs."""
    base, prompt = qwen3.url.removesuffix("/v1"), _prompt("qwen3")
    ids = ct.completion(CALL, model="qwen3", think=True)[1]

    def completions(prompt_ids, max_tokens=200):
        qwen3.inject("any", CALL)
        body = {"prompt": prompt_ids, "max_tokens": max_tokens, "logprobs": 0, "return_token_ids": True}
        return httpx.post(qwen3.url + "/completions", json=body, timeout=120)

    whole = completions(prompt).json()["choices"][0]
    rest = completions(prompt + ids[:7]).json()["choices"][0]
    assert whole["token_ids"] == ids and rest["token_ids"] == ids[7:] and rest["prompt_token_ids"] == prompt + ids[:7]
    assert rest["logprobs"]["token_logprobs"] == whole["logprobs"]["token_logprobs"][7:]
    assert (rest["finish_reason"], rest["text"]) == ("stop", ct.decode(ids[7:-1], model="qwen3"))
    cut = completions(prompt + ids[:7], max_tokens=3).json()["choices"][0]
    assert (cut["finish_reason"], cut["token_ids"]) == ("length", ids[7:10])
    qwen3.inject("any", CALL)
    body = {"input_ids": prompt + ids[:7], "sampling_params": {"max_new_tokens": 200}, "return_logprob": True}
    meta = httpx.post(base + "/generate", json=body, timeout=120).json()["meta_info"]
    assert [t[:2] for t in meta["output_token_logprobs"]] == [
        list(x) for x in zip(whole["logprobs"]["token_logprobs"][7:], ids[7:])
    ]
    refused = completions(prompt + ids[:3] + [ids[5]])
    assert refused.status_code == 400 and "(id 3 differs)" in refused.json()["error"]["message"]


def test_weight_swaps_over_http(qwen3):
    base = qwen3.url.removesuffix("/v1")
    before = httpx.get(base + "/weights", timeout=30).json()
    assert httpx.post(base + "/update_weights", json={"version": 9}, timeout=30).json() == {"ok": True, "version": "9"}
    assert httpx.get(base + "/weights", timeout=30).json() == {"version": "9", "updates": before["updates"] + 1}
    bad = httpx.post(base + "/update_weights", json={"version": "10"}, timeout=30)
    assert bad.status_code == 400 and "version '10': valid: an integer" in bad.json()["error"]["message"]
    qwen3.inject("any", TEXT)
    body = {"input_ids": _prompt("qwen3"), "sampling_params": {"max_new_tokens": 64}}
    assert httpx.post(base + "/generate", json=body, timeout=30).json()["meta_info"]["weight_version"] == "9"
    qwen3.weights.version = before["version"]  # the module's other tests expect SGLang's "default"
