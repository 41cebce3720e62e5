"""OpenAI-compatible clients for the agent and the user simulator, built from config."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import httpx2
from openai import AsyncOpenAI, DefaultAsyncHttpxClient
from openai._base_client import make_request_options
from openai._types import NotGiven, Omit
from openai.types.chat import ChatCompletion

from rollout.config import EndpointConfig, UserLLMConfig, api_key_of
from rollout.failures import EpisodeFailure, FailureClass, InvalidInput, redact

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
    per call on a long conversation with tool schemas. Streaming and everything else go to
    openai's own resource.
    """

    def __init__(self, client: AsyncOpenAI, standard):
        self._client = client
        self._standard = standard

    async def create(self, *, extra_headers=None, extra_query=None, extra_body=None, timeout=NotGiven(), **params):
        if params.get("stream") is True:
            return await self._standard.create(extra_headers=extra_headers, extra_query=extra_query,
                                               extra_body=extra_body, timeout=timeout, **params)
        body = {k: v for k, v in params.items() if not isinstance(v, (Omit, NotGiven))}
        if extra_body:
            body.update(extra_body)
        options = make_request_options(extra_headers=extra_headers, extra_query=extra_query, timeout=timeout)
        return await self._client.post("/chat/completions", cast_to=ChatCompletion, body=body, options=options)

    def __getattr__(self, name):
        return getattr(self._standard, name)


class _DirectChat:
    def __init__(self, client: AsyncOpenAI, standard):
        self.completions = _DirectCompletions(client, standard.completions)
        self._standard = standard

    def __getattr__(self, name):
        return getattr(self._standard, name)


class RolloutOpenAI(AsyncOpenAI):
    """AsyncOpenAI whose chat completions skip openai's request transform (see _DirectCompletions)."""

    @cached_property
    def chat(self):
        return _DirectChat(self, super().chat)


class CappedTransport(httpx2.AsyncBaseTransport):
    """An HTTP transport that lets at most `limit` requests be in flight at once."""

    def __init__(self, limit: int, inner: Optional[httpx2.AsyncBaseTransport] = None):
        self._inner = inner or httpx2.AsyncHTTPTransport()
        self._limit = limit
        self._sem: Optional[asyncio.Semaphore] = None

    async def handle_async_request(self, request):
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._limit)
        async with self._sem:
            response = await self._inner.handle_async_request(request)
            await response.aread()  # hold the slot until the body is in
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


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
    if http_client is None and max_concurrency > 0:
        http_client = DefaultAsyncHttpxClient(transport=CappedTransport(max_concurrency))
    return RolloutOpenAI(
        base_url=url,
        api_key=api_key or api_key_of(cfg) or PLACEHOLDER_KEY,
        http_client=http_client,
        max_retries=cfg.max_retries,
        timeout=cfg.request_timeout_s,
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
