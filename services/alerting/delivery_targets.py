"""Where a webhook may go: no internal addresses, so a subscription cannot aim the service at
hosts behind it (server-side request forgery).

A subscription's URL must be https, and its host must not be, or resolve to, a loopback,
private, link-local, multicast, reserved or unspecified address (nor any other address that is
not globally routable). Subscribing checks the host's addresses as they resolve then; each
delivery resolves the host again, checks the address it got, and connects to that very address
(with the host name kept for TLS), so a name that later resolves inward is refused there too
and the check cannot be raced by DNS answering differently twice.

`NEARHOME_ENV=development` lets any URL in (the demo, a developer's receivers), and
`ALERTING_WEBHOOK_ALLOWED_HOSTS` names hosts trusted whatever they resolve to, over http or https
(the tests' receivers on 127.0.0.1).
"""

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

from services.platform.environment import is_development

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedTargetError(ValueError):
    """A webhook URL or address the service will not send to; the message says why."""


def forbidden_kind(address: IPAddress) -> str | None:
    """What makes `address` no place for a webhook (`loopback`, `private`, ...), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    kinds = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-global", not address.is_global),  # shared address space (100.64.0.0/10), ...
    )
    return next((kind for kind, applies in kinds if applies), None)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class WebhookTargets:
    """The rules for where webhooks go: hosts trusted by name, or every one in development."""

    allowed_hosts: frozenset[str] = frozenset()
    development: bool = False

    @classmethod
    def of(cls, allowed_hosts: Iterable[str]) -> Self:
        """The rules for this process: `allowed_hosts`, and `NEARHOME_ENV` as it is now."""
        hosts = frozenset(host.strip().lower().strip("[]") for host in allowed_hosts)
        return cls(hosts - {""}, development=is_development())

    def trusts(self, host: str) -> bool:
        return self.development or host.lower() in self.allowed_hosts

    def host_of(self, url: str) -> str:
        """The URL's host; RefusedTargetError unless it is https (or its host is trusted)."""
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in {"http", "https"} or not host:
            raise RefusedTargetError(f"{url!r} is not an http(s) URL")
        if parts.scheme != "https" and not self.trusts(host):
            raise RefusedTargetError("a webhook URL must be https")
        return host

    async def check_subscription(self, url: str) -> None:
        """RefusedTargetError unless webhooks may go to `url`: https, and its host neither is
        nor resolves to an address webhooks may not go to. A host that does not resolve now is
        let in: every delivery resolves it again and checks the address it gets."""
        host = self.host_of(url)
        if self.trusts(host):
            return
        literal = _literal(host)
        if literal is not None:
            self._check(host, literal)
            return
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, 443, type=socket.SOCK_STREAM)
        except OSError:
            return
        for *_, sockaddr in found:
            self._check(host, ipaddress.ip_address(sockaddr[0]))

    async def address_for(self, host: str, port: int) -> str:
        """The address to connect to for `host`, resolved now; RefusedTargetError if webhooks
        may not go there (OSError if it does not resolve)."""
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not found:
            raise OSError(f"{host} has no address")
        address = str(found[0][4][0])
        if not self.trusts(host):
            self._check(host, ipaddress.ip_address(address))
        return address

    @staticmethod
    def _check(host: str, address: IPAddress) -> None:
        kind = forbidden_kind(address)
        if kind is not None:
            shown = host if host == str(address) else f"{host} resolves to {address}, which"
            raise RefusedTargetError(
                f"{shown} is a {kind} address: webhooks go only to public addresses"
            )
