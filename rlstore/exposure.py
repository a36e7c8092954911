"""What a Reverb server started by rlstore exposes, said in one place for every command that starts one.

Reverb's servers listen on every network interface (`[::]:PORT`: its Python API cannot bind
one address) and have no authentication. Anyone who can reach the port can sample and read
every item (the whole dataset, or the learner's weights), insert and delete items, and make the
server write a checkpoint to its disk. So the commands that start a server for other hosts
(`rlstore serve`, `rlstore run --role replay|learner`) refuse to start unless `--expose` says
the user knows, and the single-host `rlstore run` says so on its first line. README, section
Security, says how to fence the ports off (firewall, SSH tunnel).
"""
from __future__ import annotations

from typing import Mapping

from rlstore.errors import RlstoreError


class ExposureError(RlstoreError):
    """A server would listen on every interface, unauthenticated, without an explicit --expose."""


_RISK = ("no authentication: anyone who can reach {it} can read all the data, insert and delete items, "
         "and make {them} write checkpoints")


def listening(what: str, port: int | None) -> str:
    """`what listens on ... with no authentication: ...`, naming the address."""
    where = f"0.0.0.0:{port} (every network interface)" if port else "every network interface (0.0.0.0, a free port)"
    return f"{what} listens on {where} with " + _RISK.format(it="the port", them="it")


def require_expose(expose: bool, what: str, port: int | None) -> None:
    """Raises ExposureError unless the user passed --expose."""
    if not expose:
        raise ExposureError(f"refusing to start: {listening(what, port)}. Put the port behind a firewall or an "
                            "SSH tunnel (README: Security), then pass --expose")


def single_host_notice(ports: Mapping[str, int]) -> str:
    """The first line of a single-host `rlstore run`, naming its servers' ports."""
    servers = " and ".join(f"{role} on 0.0.0.0:{port}" for role, port in ports.items())
    return (f"this run's Reverb servers ({servers}) listen on every network interface while it runs, with "
            + _RISK.format(it="those ports", them="them")
            + "; if other machines can reach this one, block the ports (README: Security)")
