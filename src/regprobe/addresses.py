"""Which hosts a registry may send regprobe to: token realms (auth) and redirect targets (client).

As go-containerregistry's ``validateRealmURL`` and regclient's redirect policy: a registry must not be
able to point the prober at the cloud metadata service or at an internal address the registry does not
itself live on (SSRF) - regprobe often runs inside the cluster, with reach its registry's users lack.
Only IP literals are judged; a name is resolved by whoever connects.
"""

from __future__ import annotations

import ipaddress


def target_allowed(target_host: str, registry_host: str) -> bool:
    """A target on the registry's own host is always allowed; an IP literal outside the public address
    space only for a registry that lives in the same kind of space (a lab's 10.x registry with its 10.x
    token service or storage, loopback in tests) - and a link-local one (169.254.169.254, the metadata
    service) never."""
    if target_host == registry_host:
        return True
    target_ip = _ip(target_host)
    if target_ip is None or target_ip.is_global:
        return True
    if target_ip.is_link_local:
        return False
    if registry_host == "localhost":
        return target_ip.is_loopback
    registry_ip = _ip(registry_host)
    return registry_ip is not None and not registry_ip.is_global and not registry_ip.is_link_local


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
