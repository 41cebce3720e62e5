"""`tau2-rollout capture-check` end to end: token-in against the scripted server with Qwen3's template
(thinking, vLLM's qwen3 reasoning parser) beside chat capture on the same tasks, and a server whose
token data is wrong, named as such with a non-zero exit."""

import json
import threading
from http.server import ThreadingHTTPServer

from rollout.scripted import ScriptedServer
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL
from rollout.scripted.models import model_dir
from rollout.scripted.routes import JsonHandler
from tests.helpers import command

capture_check = command("capture-check")


def test_token_in_against_chat_capture_on_qwen3(tmp_path, capsys):
    out = tmp_path / "report.json"
    with ScriptedServer("oracle", model="qwen3", reasoning_parser="qwen3", reply_style="text_with_calls", record=False) as s:
        status = capture_check(
            [
                f"llm.base_url={s.url}",
                f"llm.model={AGENT_MODEL}",
                "llm.capture=token_in",
                f"llm.tokenizer={model_dir('qwen3')}",
                "llm.reasoning_parser=qwen3",
                f"user_llm.base_url={s.url}",
                f"user_llm.model={USER_MODEL}",
                "domains=[airline,retail]",
                "episodes=2",
                "compare=true",
                f"out={out}",
                "ray.num_workers=1",
            ]
        )
    printed = capsys.readouterr().out
    assert status == 0, printed
    report = json.loads(out.read_text())
    assert report["server"]["mode"] == "token_in" and report["server"]["ok"]
    token_in = report["domains"]
    chat = report["compare"]["token_ids"]
    for domain in ("airline", "retail"):
        assert token_in[domain]["capture"]["boundaries_split"] == 0 and token_in[domain]["capture"]["boundaries_clean"] > 0
    assert sum(d["capture"]["boundaries_split"] for d in chat.values()) > 0  # Qwen3 re-rendered drops think blocks
    assert all(len(t["segments"]) == 1 for t in report["trajectories"])
    assert "token_in: 0 of" in printed and "token_ids:" in printed


class MisalignedVllm(JsonHandler):
    """A vLLM chat endpoint whose answer has one logprob fewer than completion ids."""

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        content = [{"token": "x", "logprob": -0.5, "bytes": [120], "top_logprobs": []}] * 51
        choice = {"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop",
                  "token_ids": list(range(52)), "logprobs": {"content": content}}  # fmt: skip
        self._send(200, {"choices": [choice], "prompt_token_ids": [1, 2, 3], "usage": {}})


def test_a_misaligned_server_is_named_and_fails(tmp_path, capsys):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), MisalignedVllm)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        status = capture_check([f"llm.base_url=http://127.0.0.1:{httpd.server_address[1]}/v1", f"out={tmp_path / 'r.json'}"])
    finally:
        httpd.shutdown()
    printed = capsys.readouterr().out
    assert status == 1
    assert "misaligned: 52 completion ids but 51 logprobs" in printed and "do not train on it" in printed
    assert "tokens_as_ids" not in printed  # not mistaken for an old vLLM
