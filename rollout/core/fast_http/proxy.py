"""Proxies from the environment, as urllib reads them (HTTP_PROXY / HTTPS_PROXY / ALL_PROXY,
NO_PROXY; lowercase names win): which proxy an endpoint goes through, if any."""

from __future__ import annotations

import base64
import ipaddress
import os
from typing import Optional
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies_environment


def env_proxy(scheme: str, host: str, port: int) -> tuple[Optional[tuple[str, int, Optional[str]]], str]:
    """((proxy host, port, Proxy-Authorization value or None), its variable's name) from the
    environment for this endpoint, or (None, "") when none applies. ValueError for a proxy
    this client cannot use."""
    proxies = getproxies_environment()
    key = scheme if proxies.get(scheme) else "all"
    url = proxies.get(key)
    if not url or no_proxy_covers(proxies.get("no", ""), scheme, host, port):
        return None, ""
    var = f"{key}_proxy" if os.environ.get(f"{key}_proxy") else f"{key.upper()}_PROXY"
    parts = urlsplit(url if "://" in url else f"http://{url}")
    advice = (
        f"add {host} to NO_PROXY to connect directly, unset {var}, or build the client with trust_env=False; "
        f"or pass your own httpx client"
    )
    if parts.scheme != "http":
        raise ValueError(f"{var} names a {parts.scheme}:// proxy; rollout.core.fast_http only supports http:// proxies: {advice}")
    try:
        proxy_host, proxy_port = parts.hostname, parts.port or 80
    except ValueError:
        proxy_host = None
    if not proxy_host:
        raise ValueError(f"{var} is not a proxy URL with a host (value not shown): {advice}")
    auth = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    return (proxy_host, proxy_port, auth), var


def no_proxy_covers(no_proxy: str, scheme: str, host: str, port: int) -> bool:
    """Whether a NO_PROXY value exempts scheme://host:port from the proxy (see module doc)."""
    host = host.lower().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "://" in entry:
            entry_scheme, entry = entry.split("://", 1)
            if entry_scheme not in ("all", scheme):
                continue
            entry = entry.rstrip("/")
        entry_port = None
        if entry.startswith("["):
            end = entry.find("]")
            rest, entry = entry[end + 1 :], entry[1:end]
            if rest.startswith(":") and rest[1:].isdigit():
                entry_port = int(rest[1:])
        elif entry.count(":") == 1:
            name, _, digits = entry.partition(":")
            if digits.isdigit():
                entry, entry_port = name, int(digits)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.lstrip("*").lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False
