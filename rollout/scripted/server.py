"""A scripted OpenAI-compatible chat-completions server on loopback: the test double for the LLM.

It answers `POST /v1/chat/completions` for both the agent (the oracle or noop policy, or a
registered script) and the user simulator, `GET /v1/models`, and the engines' token interfaces:
vLLM's `POST /v1/completions` with a token-id prompt and SGLang's `POST /generate` (at the root)
with `input_ids` (token_endpoints.py). A token request's prompt is decoded and read back into
the chat request it renders (prompt_parse.py), and the same recognition and player answer it:
for the same conversation the token endpoints and the chat endpoint generate the same text,
ids and logprobs. Everything else in the
rollout path is real. Each request is recognised from tau2's prompts (recognize.py): the
role (a user-simulator prompt holds tau2's `<scenario>`) and the task, so it needs no
headers; X-Rollout-* headers, when sent, and hints (`expect`) break ties between tasks whose
prompts are identical. Run-time switches:

- `POST /admin/faults` (`set_faults`): latency and faulty answers (faults.py);
- `POST /admin/scripts` (`set_script`): a script the agent replays on a task;
- `POST /admin/expect` (`expect`, `clear_expectations`): tasks the caller runs;
- `POST /admin/inject` (`inject`): the next answer to one role, verbatim;
- `POST /admin/style` (`set_reply_style`): the shape of the agent's tool-call replies
  (text beside the calls, `""` content; see policies.styled);
- `POST /admin/tokens` (`set_tokens`): token mode's drift mode, and whether to answer as a vLLM
  older than 0.10.2 (no `prompt_token_ids` / `token_ids`);
- `GET /admin/stats`: completions by role;
- `POST /update_weights` {"version": int} (`update_weights`) and `GET /weights`: the policy's
  weights are swapped as vLLM and SGLang swap them: the version is bumped, every policy
  generation in flight ends at once with finish reason `abort` and the tokens generated so far,
  later ones run under the new version; `POST /admin/token_latency` {"ms": float}
  (`weights.set_token_latency`, `token_latency_s=`, `--token-latency-ms`) makes each generated
  token take that long, so that generations are in flight long enough to be aborted
  (engine_weights.py). A token prompt that ends with a partial completion of the model's own
  reply is continued exactly (continuation.py). `generations` logs every policy generation
  (ids, logprobs, the version of each token, finish reason).

The model (`model`: rollout.scripted.models, "qwen25" or "qwen3") and vLLM's reasoning parser
(`reasoning_parser`: None or "qwen3") are fixed per server, as `vllm serve` fixes them.

Token mode: a chat request with `return_token_ids: true` and/or `logprobs: true` is answered as
vLLM serving that model with the hermes tool parser would answer it, over a real tokenizer and
chat template (chat_tokens.py): prompt and completion token ids, logprobs, usage counted in
tokens, the message being what the completion's tokens decode and parse to. Other chat requests
are answered as before.

With `record=True`, `requests` lists every completion request:
{"role", "headers", "body", "recognition", "reply", "key_sha256"} (the Authorization header left
out; `key_sha256` fingerprints its bearer key), `endpoint` (chat | completions | generate), plus
`sent_tokens` (`prompt_token_ids`, `token_ids`, `logprobs`: what a token-mode answer carried). For
the token endpoints `body` is the chat request read back from the prompt and `reply` the message
vLLM's parsers make of the completion.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Optional

from rollout.core.config import SCRIPTED_POLICIES
from rollout.scripted import chat_tokens, token_endpoints
from rollout.scripted.chat_template import thinking
from rollout.scripted.continuation import NotAContinuation, continue_generation, split_partial
from rollout.scripted.engine_weights import EngineWeights, Flight
from rollout.scripted.faults import FAULT_MODES, Faults, duplicate_ids, fixed_ids
from rollout.scripted.models import MODELS
from rollout.scripted.policies import REPLY_STYLES, agent_reply, replay_reply, styled, tool_call, user_reply
from rollout.scripted.prompt_parse import PromptError, parse_prompt
from rollout.scripted.recognize import Key, index, recognize
from rollout.scripted.routes import JsonHandler, _Server, handler_for

__all__ = ["FAULT_MODES", "Faults", "JsonHandler", "ScriptedServer"]


class ScriptedServer:
    """The server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        agent_policy: str = "oracle",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Optional[Faults] = None,
        record: bool = True,
        reply_style: str = "plain",
        model: str = "qwen25",
        reasoning_parser: Optional[str] = None,
        weight_version: str = "default",
        token_latency_s: float = 0.0,
    ):
        self.max_model_len = 32768  # the context length /v1/models reports (the models' max_position_embeddings)
        if agent_policy not in SCRIPTED_POLICIES:
            raise ValueError(f"unknown scripted policy '{agent_policy}'; valid: {', '.join(SCRIPTED_POLICIES)}")
        if model not in MODELS:
            raise ValueError(f"unknown scripted model '{model}'; valid: {', '.join(MODELS)}")
        if reasoning_parser is not None and reasoning_parser not in chat_tokens.REASONING_PARSERS:
            raise ValueError(
                f"unknown reasoning parser '{reasoning_parser}'; valid: {', '.join(chat_tokens.REASONING_PARSERS)} (or none)"
            )
        self.agent_policy = agent_policy
        self.model = model
        self.reasoning_parser = reasoning_parser
        self.weights = EngineWeights(str(weight_version), token_latency_s)  # the policy's: versions, swaps, the log
        self._lock = threading.Lock()
        self.reply_style = "plain"
        self.set_reply_style(reply_style)
        self.faults = faults or Faults()
        self.record = record
        self.requests: list[dict] = []
        self.scripts: dict[Key, list[dict]] = {}
        self.hints: set[Key] = set()
        self.stats = {"agent": 0, "user": 0, "faults": 0}
        self._injected: list[tuple[str, dict]] = []
        self.token_drift: Optional[str] = None  # token mode: one of chat_tokens.DRIFT_MODES, or None
        self.old_vllm = False  # token mode: ignore return_token_ids, as vLLM before 0.10.2
        self._httpd = _Server((host, port), handler_for(self))
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ScriptedServer:
        threading.Thread(target=index, name="scripted-index", daemon=True).start()  # warm the task index
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="scripted-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def set_reply_style(self, style: str) -> None:
        """How the agent's tool-call replies are shaped (policies.styled): plain, text_with_calls,
        empty_content or mixed."""
        if style not in REPLY_STYLES:
            raise ValueError(f"unknown reply style '{style}'; valid: {', '.join(REPLY_STYLES)}")
        with self._lock:
            self.reply_style = style

    def set_tokens(self, drift: Optional[str] = None, old_vllm: bool = False) -> None:
        """Token mode's switches: `drift` (chat_tokens.DRIFT_MODES, None for none) changes how the
        model writes every reply; `old_vllm` answers without prompt_token_ids / token_ids."""
        if drift is not None and drift not in chat_tokens.DRIFT_MODES:
            raise ValueError(f"unknown drift mode '{drift}'; valid: {', '.join(chat_tokens.DRIFT_MODES)}")
        with self._lock:
            self.token_drift, self.old_vllm = drift, bool(old_vllm)

    def set_faults(self, **kwargs) -> None:
        with self._lock:
            self.faults = Faults(**kwargs)

    def set_script(self, domain: str, task_id: str, actions: Optional[list[dict]]) -> None:
        """Make the agent replay `actions` on this task (see policies.replay_reply); None removes
        the task's script (the policy plays it again).

        domain = task_id = "" sets the script for every task without a script of its own
        (and for requests whose task is not recognised).
        """
        with self._lock:
            if actions is None:
                self.scripts.pop((domain, str(task_id)), None)
            else:
                self.scripts[(domain, str(task_id))] = list(actions)

    def expect(self, domain: str, task_id: str) -> None:
        """Hint that (domain, task_id) is being run: it breaks ties between tasks with identical
        prompts (after X-Rollout-* headers). Hints are not consulted for unambiguous prompts."""
        with self._lock:
            self.hints.add((domain, str(task_id)))

    def clear_expectations(self) -> None:
        with self._lock:
            self.hints.clear()

    def inject(self, role: str, message: dict) -> None:
        """Answer the next request of `role` (agent | user | any) with `message` (an assistant
        message dict) instead of the player's; faults still apply."""
        if role not in ("agent", "user", "any"):
            raise ValueError(f"unknown role '{role}'; valid: agent, user, any")
        with self._lock:
            self._injected.append((role, dict(message)))

    def _take_fault(self, role: str, applies: Callable[[str], bool]) -> tuple[str, float, float]:
        """(mode, latency, hang) for one completion, consuming one faulty answer if due."""
        with self._lock:
            f = self.faults
            self.stats[role] = self.stats.get(role, 0) + 1
            mode = "none"
            if f.mode != "none" and f.count != 0 and f.role in ("any", role) and applies(f.mode):
                mode = f.mode
                self.stats["faults"] += 1
                if f.count > 0:
                    f.count -= 1
            return mode, f.latency_s, f.hang_s

    def _play(self, role: str, body: dict, rec) -> dict:
        """The player's answer (or an injected one) to this request."""
        with self._lock:
            for i, (r, message) in enumerate(self._injected):
                if r in (role, "any"):
                    return self._injected.pop(i)[1]
            script = self.scripts.get(rec.key, self.scripts.get(("", ""))) if role == "agent" else None
        if role == "user":
            return user_reply(body, rec)
        message = replay_reply(script, body) if script is not None else agent_reply(self.agent_policy, body, rec)
        return styled(message, self.reply_style, body)

    def _turn(self, body: dict, headers: dict[str, str], endpoint: str) -> tuple[dict, dict, Optional[tuple[int, dict]]]:
        """(log entry, the player's message after faults, an error answer or None) for one chat
        request (`body`: as sent, or read back from a token prompt)."""
        with self._lock:
            hints = set(self.hints)
        rec = recognize(body, headers, hints)
        role = rec.role
        entry = {
            "role": role,
            "endpoint": endpoint,
            "headers": {k: v for k, v in headers.items() if k != "authorization"},
            "body": body,
            "recognition": rec.as_dict(),
            "reply": None,
            "key_sha256": _key_fingerprint(headers),
        }
        if self.record:
            with self._lock:
                self.requests.append(entry)
        message = self._play(role, body, rec)
        mode, latency, hang = self._take_fault(
            role, lambda m: m != "duplicate_ids" or duplicate_ids(message, rec.domain) is not None
        )
        if latency:
            time.sleep(latency)
        if mode == "http_500":
            return entry, message, (500, {"error": {"message": "scripted fault: internal server error", "type": "server_error"}})
        if mode == "http_401":  # like OpenAI's, the error body quotes the key it was given
            key = headers.get("authorization", "").removeprefix("Bearer ")
            return (
                entry,
                message,
                (401, {"error": {"message": f"Incorrect API key provided: {key}", "type": "invalid_request_error"}}),
            )
        if mode == "hang":
            time.sleep(hang)
        if mode == "empty":
            message = {"role": "assistant", "content": ""}
        elif mode == "malformed_tool_json":
            name = (body.get("tools") or [{"function": {"name": "unknown"}}])[0]["function"]["name"]
            message = tool_call(f"call_bad_{len(body.get('messages', []))}", name, '{"broken": ')
        elif mode == "fixed_ids":
            message = fixed_ids(message)
        elif mode == "duplicate_ids":
            message = duplicate_ids(message, rec.domain)
        return entry, message, None

    def _response_id(self, prefix: str) -> str:
        return f"{prefix}-scripted-{self.stats['agent'] + self.stats['user']}"

    def complete(self, body: dict, headers: dict[str, str]) -> tuple[int, dict]:
        """(HTTP status, JSON body) for one chat-completions request (headers lower-cased)."""
        with self.weights.flight() as flight:  # in the engine from its arrival: a weight swap aborts it
            return self._complete(body, headers, flight)

    def _complete(self, body: dict, headers: dict[str, str], flight: Flight) -> tuple[int, dict]:
        entry, message, error = self._turn(body, headers, "chat")
        if error is not None:
            return error
        policy = entry["role"] == "agent"

        def spend(n: int) -> Optional[int]:  # the policy's generation takes its time; a weight swap aborts it
            return flight.run(n) if policy else None

        if chat_tokens.wants_tokens(body):  # vLLM's token protocol (see the module doc)
            with self._lock:
                drift, old = self.token_drift, self.old_vllm
            status, payload = chat_tokens.vllm_response(
                body,
                message,
                response_id=self._response_id("chatcmpl"),
                created=int(time.time()),
                drift=drift,
                old_server=old,
                model=self.model,
                reasoning_parser=self.reasoning_parser,
                spend=spend,
            )
            if status == 200:
                choice = payload["choices"][0]
                entry["reply"] = choice["message"]
                entry["sent_tokens"] = sent = {  # what the server sent, for tests comparing captures with it
                    "prompt_token_ids": payload.get("prompt_token_ids"),
                    "token_ids": choice.get("token_ids"),
                    "logprobs": [c["logprob"] for c in (choice["logprobs"] or {}).get("content") or []],
                }
                if policy:
                    ids, prompt = sent["token_ids"] or [], sent["prompt_token_ids"]
                    self.weights.record(
                        "chat", headers, prompt, 0, ids, sent["logprobs"], flight.version, choice["finish_reason"]
                    )
            return status, payload
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        if policy and flight.latency_s > 0:  # generated in time: a weight swap aborts it
            _, ids = chat_tokens.completion(message, model=self.model)
            generated = spend(len(ids))
            if generated is not None:
                ids, finish = ids[:generated], "abort"
                message = {"role": "assistant", "content": chat_tokens.decode(ids, model=self.model)}
            self.weights.record("chat", headers, None, 0, ids, None, flight.version, finish)
        entry["reply"] = message
        return 200, {
            "id": self._response_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def _spend(self, entry: dict, gen: token_endpoints.Generation, flight: Flight) -> token_endpoints.Generation:
        """The generation as the engine ends it: the policy's generations take their time and a
        weight swap aborts them (engine_weights.py)."""
        generated = flight.run(len(gen.ids)) if entry["role"] == "agent" else None
        return gen if generated is None else gen.aborted(generated, self.model)

    def update_weights(self, version: int) -> None:
        """Swap the policy's weights: serve `version` from now on and abort the generations in
        flight (engine_weights.py). ValueError names a version that is not an integer."""
        self.weights.update(version)

    @property
    def weight_version(self) -> str:
        """The weight version served now, as SGLang reports it (a string)."""
        return self.weights.version

    def set_token_latency(self, seconds: float) -> None:
        """How long each token of a policy generation takes (engine_weights.py)."""
        self.weights.set_token_latency(seconds)

    @property
    def generations(self) -> list[dict]:
        """The log of the policy's generations (engine_weights.py)."""
        return self.weights.log

    def complete_tokens(self, endpoint: str, body: dict, headers: dict[str, str]) -> tuple[int, dict]:
        """(HTTP status, JSON body) for vLLM's /v1/completions (`endpoint` "completions") or
        SGLang's /generate ("generate") request (headers lower-cased)."""
        with self.weights.flight() as flight:  # in the engine from its arrival: a weight swap aborts it
            return self._complete_tokens(endpoint, body, headers, flight)

    def _complete_tokens(self, endpoint: str, body: dict, headers: dict[str, str], flight: Flight) -> tuple[int, dict]:
        started = time.monotonic()
        try:
            prompts, batched = token_endpoints.prompts(endpoint, body, self.model)
        except ValueError as e:
            return 400, {"error": {"message": str(e), "type": "BadRequestError", "param": None, "code": 400}}
        sp = (body.get("sampling_params") or {}) if endpoint == "generate" else body
        cap = sp.get("max_new_tokens", 128) if endpoint == "generate" else sp.get("max_tokens", 16)
        with self._lock:
            drift = self.token_drift
        generations, answers, entries, logged = [], [], [], []
        for prompt_ids in prompts:
            head, partial = split_partial(prompt_ids, self.model)
            try:
                chat = parse_prompt(chat_tokens.decode(head, skip_special_tokens=False, model=self.model))
            except (PromptError, ValueError) as e:
                return 400, {
                    "error": {"message": f"prompt is not a chat template render: {e}", "type": "BadRequestError", "code": 400}
                }
            chat_body = {"model": body.get("model"), **chat}
            entry, message, error = self._turn(chat_body, headers, endpoint)
            if error is not None:
                return error
            think = thinking(self.model, chat["chat_template_kwargs"])
            cut = {"model": self.model, "think": think, "drift": drift, "max_tokens": cap, "stop": sp.get("stop")}
            try:
                gen = continue_generation(message, partial, **cut) if partial else token_endpoints.generate(message, **cut)
            except NotAContinuation as e:
                return 400, {"error": {"message": str(e), "type": "BadRequestError", "code": 400}}
            gen, version = self._spend(entry, gen, flight), flight.version
            generations.append(gen)
            if endpoint == "generate":
                rid = body.get("rid") or self._response_id("sglang")
                answers.append(
                    token_endpoints.generate_response(
                        body,
                        prompt_ids,
                        gen,
                        model=self.model,
                        rid=rid,
                        weight_version=version,
                        seconds=time.monotonic() - started,
                    )
                )
                sampled = [t[0] for t in answers[-1]["meta_info"].get("output_token_logprobs") or []]
            else:
                sampled = None
            entry["reply"] = chat_tokens.parse_completion(
                gen.text, tools=bool(chat["tools"]), reasoning_parser=self.reasoning_parser, think=think
            )
            entries.append(entry)
            entry["sent_tokens"] = {"prompt_token_ids": list(prompt_ids), "token_ids": list(gen.ids), "logprobs": sampled}
            logged.append((entry, prompt_ids, len(partial), version))
        if endpoint == "generate":
            self._log_tokens(endpoint, headers, logged, generations)
            return 200, (answers if batched else answers[0])
        payload = token_endpoints.completions_response(
            body, prompts, generations, model=self.model, response_id=self._response_id("cmpl"), created=int(time.time())
        )
        for e, choice in zip(entries, payload["choices"]):
            e["sent_tokens"]["logprobs"] = (choice["logprobs"] or {}).get("token_logprobs") or []
        self._log_tokens(endpoint, headers, logged, generations)
        return 200, payload

    def _log_tokens(self, endpoint: str, headers: dict, logged: list, generations: list) -> None:
        """The policy generations of one token request into the engine's log."""
        for (entry, prompt_ids, partial, version), gen in zip(logged, generations):
            if entry["role"] == "agent":
                logprobs = entry["sent_tokens"]["logprobs"]
                self.weights.record(endpoint, headers, prompt_ids, partial, gen.ids, logprobs, version, gen.finish)


def _key_fingerprint(headers: dict[str, str]) -> Optional[str]:
    """sha256 of the request's bearer key (the key itself is never recorded)."""
    key = headers.get("authorization", "").removeprefix("Bearer ")
    return hashlib.sha256(key.encode()).hexdigest() if key else None
