"""The simulator's control plane: ``/__sim/...`` on its own port, loopback only.

A simulator running as its own process (``venuefeed sim``) is steered by a
test harness over HTTP, so a scenario can change faults mid-run, cut or
silence every socket at a moment of its choosing, and quiet the market before
comparing books. The routes live under ``/__sim/``, a prefix no venue uses,
and bypass the REST fault switches (a harness must be able to turn a 429 storm
off). Every action is recorded in the ground truth like any other fault.

=========================== ==================================================
``GET  /__sim/state``       venue, paused, fault switches, open sockets, trades
``POST /__sim/faults``      JSON object of switches to set (see ``Faults``)
``POST /__sim/pause``       stop the market model (held frames are flushed)
``POST /__sim/resume``      start it again
``POST /__sim/cut``         close every open WebSocket now (``ws_cut``)
``POST /__sim/silence``     silence every open WebSocket now (``ws_silence``)
=========================== ==================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

if TYPE_CHECKING:
    from venuefeed.sim.base import SimulatorBase

__all__ = ["PREFIX", "add_control_routes"]

PREFIX: Final = "/__sim/"


def add_control_routes(app: web.Application, sim: SimulatorBase) -> None:
    async def state(_request: web.Request) -> web.Response:
        return web.json_response(sim.control_state())

    async def faults(request: web.Request) -> web.Response:
        try:
            body: Any = await request.json()
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object of fault switches")
            sim.faults.update(body)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        sim.truth.record("faults_set", switches=body)
        return web.json_response(sim.faults.as_dict())

    async def pause(_request: web.Request) -> web.Response:
        sim.pause()
        return web.json_response({"paused": True})

    async def resume(_request: web.Request) -> web.Response:
        sim.resume()
        return web.json_response({"paused": False})

    async def cut(_request: web.Request) -> web.Response:
        return web.json_response({"cut": await sim.sockets.cut_all()})

    async def silence(_request: web.Request) -> web.Response:
        return web.json_response({"silenced": sim.sockets.silence_all()})

    app.router.add_get(PREFIX + "state", state)
    app.router.add_post(PREFIX + "faults", faults)
    app.router.add_post(PREFIX + "pause", pause)
    app.router.add_post(PREFIX + "resume", resume)
    app.router.add_post(PREFIX + "cut", cut)
    app.router.add_post(PREFIX + "silence", silence)
