"""OpenAI-compatible clients for the agent and the user simulator, built from config.

`make_client` returns a `RolloutOpenAI`: an `AsyncOpenAI` whose chat completions go over
this project's lean HTTP path (`rollout.fast_http.JsonHttpClient`: keep-alive connections,
the JSON body posted as it is, the answer parsed straight into openai's `ChatCompletion`)
unless the caller supplies its own `http_client` (AReaL does), which is then used as is.
Everything else (listing models, streaming) is openai's own client.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import pydantic
from openai import AsyncOpenAI
from openai._base_client import make_request_options
from openai._models import construct_type
from openai._types import NotGiven, Omit
from openai.types.chat import ChatCompletion

from rollout.config import EndpointConfig, UserLLMConfig, api_key_of
from rollout.failures import EpisodeFailure, FailureClass, InvalidInput, redact
from rollout.fast_http import JsonHttpClient

PLACEHOLDER_KEY = "EMPTY"  # vLLM / SGLang accept any key; openai refuses to build a client without one
FALLBACK_MODEL = "default"


@dataclass
class Endpoints:
    """The clients and model names one episode talks to. The user side is None in solo mode."""

    agent_client: AsyncOpenAI
    agent_model: str
    user_client: Optional[AsyncOpenAI] = None
    user_model: Optional[str] = None


def user_sim_configured(cfg: UserLLMConfig) -> bool:
    return bool(cfg.base_url or cfg.model)


class _DirectCompletions:
    """`chat.completions.create` that posts its parameters as they are.

    The Agents SDK and the user simulator pass plain JSON data (dicts, lists, strings), for
    which openai's per-request TypedDict transform is the identity yet costs ~10 ms of CPU
    per call on a long conversation with tool schemas. With a lean HTTP client (`fast`) the
    request bypasses openai's and httpx's request machinery too. Streaming and everything
    else go to openai's own resource.
    """

    def __init__(self, client: AsyncOpenAI, standard, fast: Optional[JsonHttpClient]):
        self._client = client
        self._standard = standard
        self._fast = fast

    async def create(self, *, extra_headers=None, extra_query=None, extra_body=None, timeout=NotGiven(), **params):
        if params.get("stream") is True:
            return await self._standard.create(extra_headers=extra_headers, extra_query=extra_query,
                                               extra_body=extra_body, timeout=timeout, **params)
        body = {k: v for k, v in params.items() if not isinstance(v, (Omit, NotGiven))}
        if extra_body:
            body.update(extra_body)
        if self._fast is not None and not extra_query:
            seconds = timeout if isinstance(timeout, (int, float)) else None
            return _chat_completion(await self._fast.post_json("/chat/completions", body, extra_headers, seconds))
        options = make_request_options(extra_headers=extra_headers, extra_query=extra_query, timeout=timeout)
        return await self._client.post("/chat/completions", cast_to=ChatCompletion, body=body, options=options)

    def __getattr__(self, name):
        return getattr(self._standard, name)


def _chat_completion(data) -> ChatCompletion:
    """openai's ChatCompletion from the decoded JSON (validated; leniently built if a server
    leaves out fields openai marks required, as openai's own client does)."""
    try:
        return ChatCompletion.model_validate(data)
    except pydantic.ValidationError:
        return construct_type(type_=ChatCompletion, value=data)


class _DirectChat:
    def __init__(self, client: AsyncOpenAI, standard, fast: Optional[JsonHttpClient]):
        self.completions = _DirectCompletions(client, standard.completions, fast)
        self._standard = standard

    def __getattr__(self, name):
        return getattr(self._standard, name)


class RolloutOpenAI(AsyncOpenAI):
    """AsyncOpenAI whose chat completions skip openai's request transform and, given
    `fast_max_concurrency` (>= 0), go over the lean HTTP client (see _DirectCompletions)."""

    def __init__(self, *args, fast_max_concurrency: Optional[int] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._fast: Optional[JsonHttpClient] = None
        if fast_max_concurrency is not None:
            self._fast = JsonHttpClient(str(self.base_url), headers={"Authorization": f"Bearer {self.api_key}"},
                                        timeout_s=float(kwargs.get("timeout") or 600.0),
                                        max_retries=self.max_retries, max_concurrency=fast_max_concurrency)

    @cached_property
    def chat(self):
        return _DirectChat(self, super().chat, self._fast)

    async def close(self) -> None:
        if self._fast is not None:
            await self._fast.aclose()
        await super().close()


def make_client(cfg: EndpointConfig, *, base_url: Optional[str] = None, api_key: Optional[str] = None,
                http_client=None, role: str = "llm", max_concurrency: int = 0) -> AsyncOpenAI:
    """An AsyncOpenAI client; explicit arguments win over the config's fields.

    The API key is read now (`rollout.config.api_key_of`: literal, file, named variable or
    the standard variable), in the process that will make the requests; InvalidInput when a
    named file or variable is missing. `max_concurrency` > 0 caps the requests this client
    has in flight (ignored when the caller supplies its own `http_client`).
    """
    url = base_url or cfg.base_url
    if not url:
        raise InvalidInput(
            f"no endpoint for {role}: set {role}.base_url (or OPENAI_BASE_URL / TAU2_USER_LLM_API_BASE), "
            f"or run offline with llm.scripted=oracle"
        )
    return RolloutOpenAI(
        base_url=url,
        api_key=api_key or api_key_of(cfg) or PLACEHOLDER_KEY,
        http_client=http_client,
        max_retries=cfg.max_retries,
        timeout=cfg.request_timeout_s,
        fast_max_concurrency=max_concurrency if http_client is None else None,
    )


async def resolve_model(client: AsyncOpenAI, configured: Optional[str], *, role: str, secrets: list[str]) -> str:
    """The configured model name, else the first model the server lists (vLLM/SGLang serve one).

    Falls back to 'default' when the server has no /models route (AReaL's proxy ignores the
    name). A server that cannot be reached at all raises EpisodeFailure.
    """
    if configured:
        return configured
    import openai

    try:
        page = await client.models.list()
    except (openai.NotFoundError, openai.BadRequestError, openai.PermissionDeniedError):
        return FALLBACK_MODEL
    except Exception as e:
        cls = FailureClass.USER_SIM_ERROR if role == "user_llm" else FailureClass.MODEL_ERROR
        raise EpisodeFailure(cls, redact(f"listing models failed: {type(e).__name__}: {e}", secrets)) from None
    models = [m.id for m in page.data]
    return models[0] if models else FALLBACK_MODEL


async def open_endpoints(cfg, *, need_user: bool, base_url: Optional[str] = None, api_key: Optional[str] = None,
                         http_client=None) -> tuple[Endpoints, list[AsyncOpenAI]]:
    """Clients and model names for episodes of `cfg` (a RolloutConfig).

    `base_url` / `api_key` / `http_client` override the agent endpoint (AReaL passes them
    per call). Returns the endpoints and the clients the caller owns and must close (a
    client over a caller-supplied `http_client` is not owned). Raises InvalidInput when
    an endpoint is missing and EpisodeFailure when a model name cannot be resolved.
    """
    secrets = cfg.secrets() + ([api_key] if api_key else [])
    agent = make_client(cfg.llm, base_url=base_url, api_key=api_key, http_client=http_client, role="llm",
                        max_concurrency=cfg.llm.max_concurrency)
    user = make_client(cfg.user_llm, role="user_llm", max_concurrency=cfg.user_llm.max_concurrency) if need_user else None
    owned = [c for c in ((agent if http_client is None else None), user) if c is not None]
    try:
        endpoints = Endpoints(
            agent_client=agent,
            agent_model=await resolve_model(agent, cfg.llm.model, role="llm", secrets=secrets),
            user_client=user,
            user_model=await resolve_model(user, cfg.user_llm.model, role="user_llm", secrets=secrets) if user else None,
        )
    except BaseException:
        for client in owned:
            await client.close()
        raise
    return endpoints, owned
