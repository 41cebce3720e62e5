"""Chat-completions clients for the policy and the user simulator, built from config.

A `ChatClient` talks to one OpenAI-compatible endpoint: `complete(body)` POSTs
`{base_url}/chat/completions` with the JSON body as it is and returns the decoded JSON answer
as a plain dict (fields a server adds, such as vLLM's `prompt_token_ids`, stay as they came);
`models()` lists the model ids the server serves. Two transports carry it: this project's
keep-alive client (`rollout.core.fast_http.JsonHttpClient`, the default) or an `httpx.AsyncClient`
the caller supplies (AReaL hands its own), used as is and never closed here. Both retry what
openai's client retries (connection errors, timeouts, 408/409/429/5xx) and raise
`EndpointError` otherwise. The API key is the client's default `Authorization`; a request may
carry its own (`api_key=`), so one client serves callers with different keys (AReaL gives
each episode a session key) without ever mixing them.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from rollout.core.config import EndpointConfig, UserLLMConfig, api_key_of
from rollout.core.failures import EpisodeFailure, FailureClass, InvalidInput, redact
from rollout.core.fast_http import EndpointError, JsonHttpClient, with_retries

PLACEHOLDER_KEY = "EMPTY"  # vLLM / SGLang accept any key; some clients refuse to send none
FALLBACK_MODEL = "default"
NO_MODELS_ROUTE = {400, 403, 404, 405}  # a server (AReaL's proxy) without GET /models: it ignores the name


@dataclass
class RawToolCall:
    """A tool call as a model produced it: arguments are the raw JSON string."""

    id: str
    name: str
    arguments: str


def reply_of(data: dict) -> tuple[Optional[str], list[RawToolCall]]:
    """The text and tool calls of a chat completion's first choice, exactly as the server sent
    them (content None, "" or text; arguments as the raw string). KeyError/TypeError on a
    malformed answer."""
    message = data["choices"][0].get("message") or {}
    calls = [
        RawToolCall(id=str(tc.get("id") or ""), name=tc["function"]["name"], arguments=tc["function"].get("arguments") or "")
        for tc in message.get("tool_calls") or []
    ]
    return message.get("content"), calls


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


class _HttpxTransport:
    """`JsonHttpClient`'s interface over a caller's `httpx.AsyncClient` (or openai's httpx2-based
    default client); not owned: never closed here."""

    def __init__(self, client, base_url: str, *, headers: dict[str, str], timeout_s: float, max_retries: int):
        self._client = client
        self._base = base_url.rstrip("/")
        self._headers = headers
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        # httpx, or the httpx2 that openai's own default client is built on: their exceptions
        library = next(
            importlib.import_module(c.__module__.split(".")[0])
            for c in type(client).__mro__
            if c.__module__.split(".")[0] in ("httpx", "httpx2")
        )
        self._timeout_error, self._transport_error = library.TimeoutException, library.TransportError

    async def post_json(
        self,
        path: str,
        body: dict,
        headers: Optional[dict[str, str]] = None,
        timeout_s: Optional[float] = None,
        gate: Optional[Callable[[], Awaitable[None]]] = None,
    ) -> Any:
        content = json.dumps(body, separators=(",", ":")).encode()
        head = {**self._headers, **(headers or {}), "Content-Type": "application/json"}
        if gate is not None:
            await gate()
        return await self._send("POST", path, head, content, timeout_s)

    async def get_json(self, path: str, timeout_s: Optional[float] = None) -> Any:
        return await self._send("GET", path, dict(self._headers), None, timeout_s)

    async def _send(self, method: str, path: str, headers: dict, content: Optional[bytes], timeout_s) -> Any:
        timeout = timeout_s or self._timeout_s

        async def attempt():
            try:
                response = await self._client.request(
                    method, self._base + path, headers=headers, content=content, timeout=timeout
                )
            except self._timeout_error:  # the client's own timeout: reported as ours
                raise TimeoutError from None
            return response.status_code, response.headers, response.content

        return await with_retries(
            attempt, max_retries=self._max_retries, timeout_s=timeout, connection_errors=(self._transport_error,)
        )

    async def aclose(self) -> None:
        pass


class ChatClient:
    """One OpenAI-compatible chat-completions endpoint (see module doc). Use from one event loop."""

    def __init__(
        self, base_url: str, *, api_key: str, timeout_s: float, max_retries: int, max_concurrency: int = 0, http_client=None
    ):
        self.base_url = base_url
        self.max_model_len: Optional[int] = None  # the served model's context length, once a caller asked the server
        headers = bearer(api_key)
        if http_client is None:
            self._http = JsonHttpClient(
                base_url, headers=headers, timeout_s=timeout_s, max_retries=max_retries, max_concurrency=max_concurrency
            )
        else:
            self._http = _HttpxTransport(http_client, base_url, headers=headers, timeout_s=timeout_s, max_retries=max_retries)

    async def complete(
        self,
        body: dict,
        *,
        headers: Optional[dict[str, str]] = None,
        api_key: Optional[str] = None,
        timeout_s: Optional[float] = None,
        gate: Optional[Callable[[], Awaitable[None]]] = None,
    ) -> dict:
        """POST the body to /chat/completions; the decoded answer. Raises EndpointError. `gate`:
        awaited just before the request is sent (after any wait for the endpoint's cap)."""
        data = await self.post("/chat/completions", body, headers=headers, api_key=api_key, timeout_s=timeout_s, gate=gate)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise EndpointError(f"not a chat completion (no choices): {json.dumps(data)[:200]}")
        return data

    async def post(
        self,
        path: str,
        body: dict,
        *,
        headers: Optional[dict[str, str]] = None,
        api_key: Optional[str] = None,
        timeout_s: Optional[float] = None,
        gate: Optional[Callable[[], Awaitable[None]]] = None,
    ) -> Any:
        """POST the body to base_url + path (a token route: /completions, /generate); the decoded
        answer. Raises EndpointError. `gate`: as for `complete`."""
        if api_key:
            headers = {**(headers or {}), **bearer(api_key)}
        return await self._http.post_json(path, body, headers, timeout_s, gate)

    async def get(self, path: str) -> Any:
        """GET base_url + path; the decoded answer. Raises EndpointError."""
        return await self._http.get_json(path)

    async def models(self) -> list[str]:
        """The model ids of GET /models. Raises EndpointError."""
        data = await self._http.get_json("/models")
        return [m["id"] for m in (data.get("data") or []) if isinstance(m, dict) and "id" in m] if isinstance(data, dict) else []

    async def close(self) -> None:
        await self._http.aclose()


@dataclass(frozen=True)
class EpisodeClients:
    """The clients and model names an episode talks to. The user side is None when the episode
    needs none (solo, or the environment runs its own user simulator). `agent_api_key`, when
    set, is sent with every agent request instead of the client's own key; `agent_headers` and
    `agent_extra_body` go with every agent request too (a caller's routing headers, vLLM
    options, per-request sampling)."""

    agent_client: ChatClient
    agent_model: str
    user_client: Optional[ChatClient] = None
    user_model: Optional[str] = None
    agent_api_key: Optional[str] = None
    agent_headers: dict[str, str] = field(default_factory=dict)
    agent_extra_body: dict[str, Any] = field(default_factory=dict)


def user_sim_configured(cfg: UserLLMConfig) -> bool:
    return bool(cfg.base_url or cfg.model)


def make_client(
    cfg: EndpointConfig,
    *,
    base_url: Optional[str] = None,
    api_key: Optional[str] = None,
    http_client=None,
    role: str = "llm",
    max_concurrency: int = 0,
) -> ChatClient:
    """A ChatClient for an endpoint section; explicit arguments win over the config's fields.

    The API key is read now (`rollout.core.config.api_key_of`: literal, file, named variable or the
    standard variable), in the process that will make the requests; InvalidInput when a named
    file or variable is missing. `max_concurrency` > 0 caps the requests this client has in
    flight (not with a caller's `http_client`, whose own limits apply).
    """
    url = base_url or cfg.base_url
    if not url:
        raise InvalidInput(
            f"no endpoint for {role}: set {role}.base_url (or OPENAI_BASE_URL / TAU2_USER_LLM_API_BASE), "
            f"or run offline with llm.scripted=oracle"
        )
    try:
        return ChatClient(
            url,
            api_key=api_key or api_key_of(cfg) or PLACEHOLDER_KEY,
            timeout_s=cfg.request_timeout_s,
            max_retries=cfg.max_retries,
            max_concurrency=max_concurrency,
            http_client=http_client,
        )
    except ValueError as e:  # a key that cannot be a header value, a proxy scheme not supported: never echoes a key
        raise InvalidInput(f"{role}: {e}") from None


async def resolve_model(client: ChatClient, configured: Optional[str], *, role: str, secrets: list[str]) -> str:
    """The configured model name, else the first model the server lists (vLLM/SGLang serve one).

    Falls back to 'default' when the server has no /models route (AReaL's proxy ignores the
    name). A server that cannot be reached at all raises EpisodeFailure.
    """
    if configured:
        return configured
    try:
        models = await client.models()
    except EndpointError as e:
        if e.status in NO_MODELS_ROUTE:
            return FALLBACK_MODEL
        cls = FailureClass.USER_SIM_ERROR if role == "user_llm" else FailureClass.MODEL_ERROR
        raise EpisodeFailure(cls, redact(f"listing models failed: {e}", secrets)) from None
    return models[0] if models else FALLBACK_MODEL
