"""The YAML configuration (../shared/CONTRACT.md), validated strictly.

Unknown keys, wrong types and missing keys are errors naming the file and the key path, e.g.
``config.yaml: registries[0].blob_check: must be one of 'head', 'range', 'digest'``. Values are never
echoed in errors: a password pasted under the wrong key must not end up in a CI log.
"""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError, InvalidReferenceError
from .reference import validate_repository

DEFAULT_PATH = "/etc/regprobe/config.yaml"
DEFAULT_JOB = "registry-integrity-probe"

BlobCheck = Literal["head", "range", "digest"]
#: Bounds shared with the command line's flags.
MAX_CONCURRENCY = 1024
MAX_SECONDS = 86400.0
PositiveInt = Annotated[int, Field(ge=1, le=MAX_CONCURRENCY)]
Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]


def _repository_name(value: str) -> str:
    try:
        return validate_repository(value)
    except InvalidReferenceError:
        # The value is not echoed (see the module docstring); the key path names the entry.
        raise ValueError(
            "not a repository name: lowercase components of a-z 0-9 separated by '.', '_', '__' or '-', joined by '/'"
        ) from None


RepositoryName = Annotated[str, AfterValidator(_repository_name)]


class _Strict(BaseModel):
    # strict: "16" is not 16 and "yes" is not true in a file people edit by hand.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Repositories(_Strict):
    include: list[str] = ["*"]
    exclude: list[str] = []
    list_: list[RepositoryName] = Field(default=[], alias="list")

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class Auth(_Strict):
    username: str
    password_file: str | None = None
    password_env: str | None = None
    #: Filled in by the loader from password_file / password_env; never written in YAML.
    password: SecretStr | None = Field(default=None, exclude=True)
    #: Set by the loader when password_file cannot be read: that registry's run is incomplete (exit 3),
    #: the others are probed - a secret not mounted yet is a runtime condition, not a bad config.
    unavailable: str | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError("'password' is not accepted inline: use password_file or password_env")
        if isinstance(data, dict) and "unavailable" in data:  # the loader's own field
            raise ValueError("unknown key 'unavailable'")
        return data

    @model_validator(mode="after")
    def _one_source(self) -> Auth:
        if self.password is None and (self.password_file is None) == (self.password_env is None):
            raise ValueError("give exactly one of password_file or password_env")
        return self


class TLS(_Strict):
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False


#: Domains reserved for documentation (RFC 2606): no registry or pushgateway lives under them, so a URL
#: there is an example nobody replaced - deploy/k8s/config.yaml applied as shipped would otherwise fail
#: every run as an unreachable registry (issue 21).
EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org", "example")


def _not_an_example(host: str) -> None:
    host = host.lower().rstrip(".")
    if any(host == domain or host.endswith("." + domain) for domain in EXAMPLE_DOMAINS):
        raise ValueError(
            "names a reserved example domain (example.com/.net/.org, .example; RFC 2606): this is the example "
            "configuration's placeholder - replace it with your own (docs/operator-guide.md, Install)"
        )


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials (use auth)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be the registry root (the /v2/ API is found under it)")
    _not_an_example(parts.hostname)
    return f"{parts.scheme}://{parts.netloc}"


class RegistryConfig(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    url: str
    index_children: bool = True
    #: A pull-through cache (distribution's proxy mode): checked without making it fetch from upstream,
    #: which needs its storage to know what it holds (pullthrough.py).
    pull_through: bool = False
    #: The cache's storage ``rootdirectory``, readable here (a read-only mount); only with pull_through.
    storage_root: Annotated[str, Field(min_length=1)] | None = None
    blob_check: BlobCheck = "range"
    #: Walk each image's OCI 1.1 referrers (signatures, SBOMs, attestations).
    referrers: bool = True
    repositories: Repositories = Repositories()
    auth: Auth | None = None
    tls: TLS = TLS()
    concurrency: PositiveInt | None = None
    timeout: Seconds | None = None

    _url = field_validator("url")(_check_url)

    @model_validator(mode="after")
    def _pull_through(self) -> RegistryConfig:
        if self.pull_through and self.storage_root is None:
            # Over the API a cache answers every miss by fetching from upstream, HEAD included: what it
            # holds can only be read from its storage (docs/registries.md, "Pull-through caches").
            raise ValueError("pull_through: needs storage_root, the cache's storage rootdirectory")
        if self.storage_root is not None and not self.pull_through:
            raise ValueError("storage_root: only for a pull-through cache (pull_through: true)")
        if self.pull_through and self.index_children and "index_children" in self.model_fields_set:
            raise ValueError("index_children: true contradicts pull_through: true (a cache holds what was pulled)")
        return self


class Pushgateway(_Strict):
    url: str
    job: Annotated[str, Field(min_length=1)] = DEFAULT_JOB
    #: Many pushgateways sit behind an authenticating proxy: Basic credentials, as for a registry.
    auth: Auth | None = None
    tls: TLS = TLS()

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        _not_an_example(parts.hostname)
        return value.rstrip("/")


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def _seconds(text: str, forms: str = "90s, 15m, 1h30m, 7d") -> float:
    """``90``, ``90s``, ``15m``, ``1h30m``, ``7d`` -> seconds; ValueError naming the accepted ``forms`` otherwise."""
    text = text.strip()
    if text.isdigit():
        return float(text)
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"is not a duration (like {forms}, or seconds)")
    days, hours, minutes, secs = (int(g or 0) for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + secs)


def parse_duration(text: str) -> float:
    """A schedule's interval: ``90``, ``90s``, ``15m``, ``1h30m`` -> seconds, between 1 s and 24 h."""
    return _interval_bounds(_seconds(text, "90s, 15m, 1h30m"))


def _interval_bounds(seconds: float) -> float:
    if not 1 <= seconds <= 86400:
        raise ValueError("must be between 1s and 24h")
    return seconds


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (every interface) or ``[::1]:PORT`` -> (host, port); host "" is every one."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("is not HOST:PORT (like :9839 or 127.0.0.1:9839)")
    return host.removeprefix("[").removesuffix("]"), int(port)


class Serve(_Strict):
    """``regprobe serve``: the command line's --listen and --interval win over these."""

    listen: str = ":9839"
    #: Seconds, or a duration string ("15m"). The alerts assume 15 minutes.
    interval: float | str = 900.0

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float | str) -> float:
        return parse_duration(value) if isinstance(value, str) else _interval_bounds(float(value))

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @property
    def interval_seconds(self) -> float:
        assert isinstance(self.interval, float)
        return self.interval


#: ``coverage.window`` bounds: shorter than a minute no schedule could meet; a quarter of a year is as
#: long as "verified" can stay meaningful.
MIN_WINDOW, MAX_WINDOW = 60.0, 90 * 86400.0


class Coverage(_Strict):
    """Continuous verification's promise: every selected tag verified at least once per ``window``."""

    #: Seconds, or a duration string ("24h", "7d").
    window: float | str = 86400.0

    @field_validator("window")
    @classmethod
    def _window(cls, value: float | str) -> float:
        seconds = _seconds(value) if isinstance(value, str) else float(value)
        if not MIN_WINDOW <= seconds <= MAX_WINDOW:
            raise ValueError("must be between 1m and 90d")
        return seconds

    @property
    def window_seconds(self) -> float:
        assert isinstance(self.window, float)
        return self.window


class Budget(_Strict):
    #: Requests one registry's (one shard's) verification may make per run; 0: only the deadline bounds it.
    #: The listing (catalog, tag lists) is not counted: every run needs all of it.
    requests: Annotated[int, Field(ge=0)] = 0


_SIZE = re.compile(r"(\d+)\s*(|k|ki|m|mi|g|gi|t|ti)b?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``1048576``, ``500MB``, ``10GiB``, ``1TB`` -> bytes (k, M, G, T powers of 1000; Ki, Mi, Gi, Ti of 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError("is not a size (like 500MB, 10GiB, or a number of bytes)")
    unit = match[2].lower()
    power = "kmgt".index(unit[0]) + 1 if unit else 0
    base = 1024 if unit.endswith("i") else 1000
    return int(match[1]) * int(base**power)


class Scrub(_Strict):
    #: Bytes of blob content downloaded and hashed per run (an int or "10GiB"); 0: no scrub.
    bytes_per_run: Annotated[int, Field(ge=0)] | str = 0

    @field_validator("bytes_per_run")
    @classmethod
    def _bytes(cls, value: int | str) -> int:
        return parse_size(value) if isinstance(value, str) else value

    @property
    def bytes(self) -> int:
        assert isinstance(self.bytes_per_run, int)
        return self.bytes_per_run


class Config(_Strict):
    registries: Annotated[list[RegistryConfig], Field(min_length=1)]
    pushgateway: Pushgateway | None = None
    serve: Serve = Serve()
    concurrency: PositiveInt = 16
    timeout: Seconds = 30.0
    #: Fits the CronJob's budget (deploy/k8s/cronjob.yaml): start-up, this, and the pushes stay under its
    #: activeDeadlineSeconds (870) and the 15-minute schedule, so a slow run still reports itself incomplete.
    deadline: Seconds = 720.0
    cache_dir: str | None = None
    max_broken_series: Annotated[int, Field(ge=0, le=10000)] = 50
    #: Largest manifest body read; distribution itself refuses to store manifests over 4 MiB.
    max_manifest_bytes: Annotated[int, Field(ge=1024, le=1 << 30)] = 4 << 20
    #: Where each registry's (each shard's) verification ledger lives; without it a run cannot know what
    #: earlier runs verified, and rotates instead (docs/design/continuous-verification.md).
    state_dir: Annotated[str, Field(min_length=1)] | None = None
    coverage: Coverage = Coverage()
    budget: Budget = Budget()
    scrub: Scrub = Scrub()

    @model_validator(mode="after")
    def _scrub_needs_a_ledger(self) -> Config:
        if self.scrub.bytes and self.state_dir is None:
            raise ValueError("scrub.bytes_per_run: needs state_dir (the ledger remembers what was scrubbed when)")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for i, registry in enumerate(self.registries):
            if registry.name in seen:
                raise ValueError(f"registries[{i}].name: duplicate name {registry.name!r}")
            seen.add(registry.name)
        return self

    def concurrency_for(self, registry: RegistryConfig) -> int:
        return registry.concurrency or self.concurrency

    def timeout_for(self, registry: RegistryConfig) -> float:
        return registry.timeout or self.timeout


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a config with both is a mistake to name."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + ("list" if part == "list_" else part)
    return out


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "model_type": "must be a mapping",
    "dict_type": "must be a mapping",
}


def _message(error: Any) -> str:
    kind = error["type"]
    if kind in _MESSAGES:
        return str(_MESSAGES[kind])
    if kind == "too_short":
        return "must not be empty"
    bounds = {
        "greater_than": "greater than",
        "greater_than_equal": "at least",
        "less_than_equal": "at most",
        "less_than": "less than",
    }
    if kind in bounds:
        limit = next(iter(error["ctx"].values()))
        return f"must be {bounds[kind]} {limit}"
    if kind == "literal_error":
        return "must be one of " + str(error["ctx"]["expected"]).replace(" or ", ", ")
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


_KEYED = re.compile(r"([a-z_.]+): (.+)", re.DOTALL)


def _format(source: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        message = _message(error)
        # Cross-field validators put their own path in front of the message.
        if ": " in message and message.split(": ", 1)[0].startswith("registries["):
            lines.append(f"{source}: {message}")
        elif (keyed := _KEYED.fullmatch(message)) is not None:
            # A model's own validator names the key it is about: `registries[0]` + `pull_through`.
            where = _path(loc)
            lines.append(f"{source}: {where + '.' if where else ''}{keyed[1]}: {keyed[2]}")
        else:
            lines.append(f"{source}: {_path(loc) or '(top level)'}: {message}")
    return "\n".join(lines)


def parse(data: object, source: str) -> Config:
    if data is None:
        raise ConfigError(f"{source}: empty configuration (need at least 'registries')")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: (top level): must be a mapping")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(source, exc)) from None
    config = _resolve_secrets(config, source)
    if config.pushgateway is not None:
        config = config.model_copy(update={"pushgateway": _resolve_pushgateway(config.pushgateway, source)})
    return config


def _resolve_pushgateway(gateway: Pushgateway, source: str) -> Pushgateway:
    """The pushgateway's secret and TLS files, read at load: without them no run could report."""
    if gateway.auth is not None and gateway.auth.password is None:
        where = f"{source}: pushgateway.auth"
        try:
            secret = _read_secret(gateway.auth, where)
        except _UnreadableSecretError as exc:
            raise ConfigError(f"{where}.password_file: {exc}") from None
        gateway = gateway.model_copy(update={"auth": gateway.auth.model_copy(update={"password": SecretStr(secret)})})
    _check_tls_files(gateway.tls, f"{source}: pushgateway.tls")
    return gateway


def _resolve_secrets(config: Config, source: str) -> Config:
    registries = []
    for i, registry in enumerate(config.registries):
        auth = registry.auth
        if auth is not None and auth.password is None:
            try:
                auth = auth.model_copy(
                    update={"password": SecretStr(_read_secret(auth, f"{source}: registries[{i}].auth"))}
                )
            except _UnreadableSecretError as exc:
                # A Secret not mounted (yet) is a runtime condition of this registry, not a bad config:
                # it is reported incomplete (exit 3), the others are probed.
                auth = auth.model_copy(update={"unavailable": f"auth.password_file: {exc}"})
            registry = registry.model_copy(update={"auth": auth})
        _check_tls_files(registry.tls, f"{source}: registries[{i}].tls")
        registries.append(registry)
    return config.model_copy(update={"registries": registries})


class _UnreadableSecretError(Exception):
    """password_file cannot be read; the message says which file and why."""


def _read_secret(auth: Auth, where: str) -> str:
    """The password from its source. An empty one is a config error naming the source: sent as is, it
    would end as a 401 - exit 3, which CI treats as a warning - and an unset CI secret would pass."""
    if auth.password_file is not None:
        try:
            secret = Path(auth.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise _UnreadableSecretError(f"cannot read {auth.password_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{where}.password_file: {auth.password_file} is not UTF-8 text") from None
        if not secret:
            raise ConfigError(f"{where}.password_file: {auth.password_file} is empty")
        return secret
    assert auth.password_env is not None
    env = os.environ.get(auth.password_env)
    if env is None:
        raise ConfigError(f"{where}.password_env: environment variable {auth.password_env} is not set")
    if not env:
        raise ConfigError(f"{where}.password_env: environment variable {auth.password_env} is empty")
    return env


def _check_tls_files(tls: TLS, where: str) -> None:
    """Load the TLS files now, so a bad one stops the run before anything is probed (exit 2, naming the
    key) instead of failing inside one registry's probe."""
    for field in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, field)
        if path is not None and not os.access(path, os.R_OK):
            raise ConfigError(f"{where}.{field}: cannot read {path}")
    if tls.key_file is not None and tls.cert_file is None:
        raise ConfigError(f"{where}.key_file: given without cert_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for field in ("ca_file", "cert_file"):
        path = getattr(tls, field)
        if path is None:
            continue
        try:
            context.load_verify_locations(cafile=path)
        except ssl.SSLError:
            raise ConfigError(f"{where}.{field}: {path} holds no PEM certificate") from None
    if tls.cert_file is not None:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        except ssl.SSLError as exc:
            if tls.key_file is None:
                raise ConfigError(f"{where}.cert_file: {tls.cert_file} holds no private key; give key_file") from None
            if exc.reason == "KEY_VALUES_MISMATCH":
                raise ConfigError(f"{where}.key_file: {tls.key_file} is not the key of cert_file") from None
            raise ConfigError(f"{where}.key_file: {tls.key_file} holds no PEM private key") from None


def load(path: str | os.PathLike[str]) -> Config:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read configuration: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: {where}invalid YAML: {problem}") from None
    return parse(data, source)
