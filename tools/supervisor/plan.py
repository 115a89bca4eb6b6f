"""What `nearhome run` starts: which services, with which command, answering at which URL."""

import importlib
import importlib.util
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.platform.settings import ServiceSettings

SERVICES = ("provider", "authority", "ledger", "alerting")
SIMULATOR = "simulator"
DEFAULT_SIMULATE_ARGS = "--region north-west --speed 60 --seed 1"
# Addresses a server binds to that a client cannot connect to as such.
_ANY_ADDRESS = {"0.0.0.0", "::", ""}  # noqa: S104 - compared with, never bound


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One supervised process: `url` is where it answers /health and /ready (None: no probes)."""

    name: str
    argv: tuple[str, ...]
    url: str | None = None
    restart: bool = True
    stop_signal: signal.Signals = signal.SIGTERM
    # Added to the supervisor's environment for this child alone (its DATABASE_URL, say).
    environment: Mapping[str, str] = field(default_factory=dict)


def parse_only(text: str | None) -> tuple[str, ...]:
    """The services named in `--only provider,authority`, in the usual order; all when None."""
    if text is None:
        return SERVICES
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SERVICES]
    if unknown:
        raise ValueError(
            f"unknown service {', '.join(map(repr, unknown))}; choose from {', '.join(SERVICES)}"
        )
    if not names:
        raise ValueError(f"name at least one service: {', '.join(SERVICES)}")
    return tuple(name for name in SERVICES if name in names)


def is_built(name: str) -> bool:
    """Whether `services/<name>/app.py` exists (`nearhome serve <name>` needs it)."""
    try:
        return importlib.util.find_spec(f"services.{name}.app") is not None
    except ModuleNotFoundError:
        return False


def split_built(
    names: Sequence[str], built: Callable[[str], bool] = is_built
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the services that can run, the ones not built yet)."""
    return (
        tuple(name for name in names if built(name)),
        tuple(name for name in names if not built(name)),
    )


def service_settings(name: str) -> ServiceSettings:
    """The service's own settings from the environment: the same host and port it will use."""
    module = importlib.import_module(f"services.{name}.settings")
    settings: ServiceSettings = module.Settings()
    return settings


def base_url(settings: ServiceSettings) -> str:
    host = "127.0.0.1" if settings.host in _ANY_ADDRESS else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def nearhome_command(python: str = sys.executable) -> tuple[str, ...]:
    """How to run `nearhome`: the console script beside the interpreter, else through it."""
    script = Path(python).parent / "nearhome"
    if script.is_file():
        return (str(script),)
    return (python, "-c", "from services.cli import main; main()")


def service_spec(name: str, url: str, command: Sequence[str]) -> ChildSpec:
    return ChildSpec(name=name, argv=(*command, "serve", name), url=url)


def simulator_spec(
    args: str, command: Sequence[str], provider_url: str, authority_url: str
) -> ChildSpec:
    """`nearhome simulate <args>`, aimed at the services as run here unless `args` says where."""
    argv = shlex.split(args)
    given = {arg.split("=", 1)[0] for arg in argv}
    if "--provider-url" not in given:
        argv += ["--provider-url", provider_url]
    if "--authority-url" not in given:
        argv += ["--authority-url", authority_url]
    # SIGINT, as Ctrl-C would: the simulator then prints its summary before it exits.
    return ChildSpec(
        name=SIMULATOR,
        argv=(*command, "simulate", *argv),
        restart=False,
        stop_signal=signal.SIGINT,
    )


def linked_environment(urls: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """What the services run together need to know of each other, where `environ` does not say.

    Each page (the provider's and the authority's workspaces, the ledger's dashboard) is told
    where the services it reads are, as run here (`NEARHOME_<SERVICE>_URL`), and those let pages
    from the pages' origins read them (`NEARHOME_BROWSER_ORIGINS`, GET only).
    """
    linked = {f"NEARHOME_{name.upper()}_URL": url for name, url in urls.items()}
    pages = [urls[name] for name in ("provider", "authority", "ledger") if name in urls]
    if pages:
        origins = [
            origin
            for url in pages
            for origin in (url, url.replace("//127.0.0.1:", "//localhost:", 1))
        ]
        linked["NEARHOME_BROWSER_ORIGINS"] = ",".join(dict.fromkeys(origins))
    return {name: value for name, value in linked.items() if name not in environ}
