"""Who is on the other end of a request."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_network(ip: str) -> str:
    """What one client controls: its IPv4 address, or its IPv6 /64 (a host gets a whole /64
    and could otherwise rotate through it to dodge per-address limits)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def client_ip(request: HttpRequest) -> str:
    """The client's IP: REMOTE_ADDR, or the entry GERION_TRUSTED_PROXY_COUNT hops from the
    right of X-Forwarded-For when that many proxies we run sit in front (anything further
    left is client-controlled and ignored)."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    hops = settings.GERION_TRUSTED_PROXY_COUNT
    if hops > 0:
        chain = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        chain = [p for p in chain if p]
        if len(chain) >= hops:
            candidate = chain[-hops]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return remote or "unknown"
