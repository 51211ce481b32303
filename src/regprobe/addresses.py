"""Which hosts a registry may send regprobe to: token realms (auth) and redirect targets (client).

As go-containerregistry's ``validateRealmURL`` and regclient's redirect policy: a registry must not be
able to point the prober at the cloud metadata service or at an internal address the registry does not
itself live on (SSRF) - regprobe often runs inside the cluster, with reach its registry's users lack.

What is judged is the address a connection would really use (issue 22), twice:

- before any request, a host written as an address (:func:`refusal`), in every spelling the
  system's resolver turns into one - inet_aton's ``0x7f.0.0.1``, ``0177.0.1``, ``127.1``,
  ``2130706433`` - and an IPv4-mapped IPv6 address (``[::ffff:169.254.169.254]``) as the IPv4 address
  it reaches;
- when the transport connects, a name by every address it resolves to (:class:`Guard`): a registry
  must not reach the metadata service through a name of its own that resolves there.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable

from .errors import BlockedAddressError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Space(enum.Enum):
    PUBLIC = "public"
    #: This host: loopback, and the unspecified address (a connection to 0.0.0.0 or :: lands here too).
    LOOPBACK = "loopback"
    #: Link-local, and the cloud metadata services: never a target, whoever asks.
    LINK_LOCAL = "link-local"
    #: Everything else outside the public space: RFC 1918, ULA, carrier-grade NAT, reserved.
    PRIVATE = "private"


#: Metadata services outside the link-local range: AWS's IPv6 endpoint (a ULA) and Alibaba Cloud's.
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200"))
#: RFC 6052's well-known NAT64 prefix: behind a NAT64 gateway (IPv6-only clusters) 64:ff9b::a9fe:a9fe is
#: 169.254.169.254.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_INET_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def address(host: str) -> IPAddress | None:
    """The address ``host`` names when it is written as one (a URL's host, brackets and all), as a
    connection to it would reach it; None for a name."""
    text = host.removeprefix("[").removesuffix("]")
    try:
        ip: IPAddress | None = ipaddress.ip_address(text)
    except ValueError:
        # A trailing dot: what inet_aton refuses, some resolvers still read as the address.
        ip = _inet_aton(text.removesuffix("."))
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """inet_aton's forms, which getaddrinfo accepts for a host: one to four parts, each decimal, octal
    (a leading 0) or hexadecimal (0x); the last part fills the bytes the others leave."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_ATON_PART.fullmatch(part) for part in parts):
        return None
    values = [int(p[2:] or "0", 16) if p[:2] in ("0x", "0X") else int(p, 8 if p[0] == "0" else 10) for p in parts]
    *leading, last = values
    if any(value > 0xFF for value in leading) or last >= 1 << (8 * (5 - len(parts))):
        return None
    number = last
    for i, value in enumerate(leading):
        number |= value << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def space(ip: IPAddress) -> Space:
    if ip.is_link_local or ip in _METADATA:
        return Space.LINK_LOCAL
    if ip.is_loopback or ip.is_unspecified:
        return Space.LOOPBACK
    return Space.PUBLIC if ip.is_global else Space.PRIVATE


def reachable(target: IPAddress, registry: Iterable[Space]) -> bool:
    """A public address always; a loopback or private one only for a registry that lives in that same
    space (a lab's 10.x registry with its 10.x token service or storage; loopback in tests); a
    link-local one never."""
    where = space(target)
    return where is Space.PUBLIC or (where is not Space.LINK_LOCAL and where in set(registry))


def refusal(target_host: str, registry_host: str) -> str | None:
    """Why the registry at ``registry_host`` may not send regprobe to ``target_host``, judged before any
    request; None when it may. Its own host, always. A name, here: it is judged by what it resolves to
    when the connection is made (:class:`Guard`). An address, by :func:`reachable` - and since a registry
    known by a name is not resolved for this, such a registry counts as public: an internal address it
    names is refused."""
    target = address(target_host)
    if target_host == registry_host or target is None:
        return None
    registry = address(registry_host)
    if target == registry or reachable(target, _static_spaces(registry_host, registry)):
        return None
    spelled = target_host.removeprefix("[").removesuffix("]")
    named = str(target) if spelled == str(target) else f"{target_host} is {target}"
    return f"{named}, {_not_here(target)}"


def _not_here(ip: IPAddress) -> str:
    return f"a {space(ip).value} address the registry does not live on"


def _static_spaces(host: str, ip: IPAddress | None) -> set[Space]:
    if ip is not None:
        return {space(ip)}
    return {Space.LOOPBACK} if host == "localhost" else set()


class Guard:
    """The check at connect time, for one registry's connections (the transport calls :meth:`admit`
    with what each name resolved to): the registry's own name may resolve anywhere, and where it does is
    where the registry lives; another name only to addresses :func:`reachable` from there.

    A registry whose own name resolves into a private space may send regprobe into it: whoever controls
    that name can already send regprobe's registry requests there, so nothing is given away."""

    def __init__(self, registry_host: str) -> None:
        self._registry = _name(registry_host)
        self._spaces = _static_spaces(registry_host, address(registry_host))

    def admit(self, host: str, resolved: Iterable[str]) -> None:
        """Raise :class:`BlockedAddressError` when ``host`` resolved to an address the registry may not
        send regprobe to."""
        addresses = [ip for ip in map(address, resolved) if ip is not None]
        if _name(host) == self._registry:
            self._spaces.update(map(space, addresses))
            return
        for ip in addresses:
            if not reachable(ip, self._spaces):
                raise BlockedAddressError(f"{host} resolves to {ip}, {_not_here(ip)}", host=host)


def _name(host: str) -> str:
    return host.lower().removesuffix(".")
