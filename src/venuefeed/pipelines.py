"""The names seed 002 documents, over venuefeed's own pieces.

Seed 002 ("Market Data Ingestion System") describes a ``DataWriter``
(``write_trades``, ``write_quotes``, ``write_candles``) and a
``RealtimePipeline`` (``start(symbols)``, ``stop()``). Code written against
those names runs on venuefeed unchanged: the writer is the configured sinks
(idempotent, durable when the call returns), the pipeline is the service with
the given symbols subscribed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from venuefeed.config import Settings, load_config
from venuefeed.models import Candle, TopOfBook, Trade
from venuefeed.service import Service, build_sink
from venuefeed.sinks.base import Record, Sink
from venuefeed.venues.base import adapter_class

__all__ = ["DataWriter", "RealtimePipeline"]


def _settings(config: Settings | str | Path | None) -> Settings:
    return config if isinstance(config, Settings) else load_config(config)


class DataWriter:
    """Bulk writes into the configured stores; each call returns once they are durable.

    Writes are idempotent on the records' natural keys: writing a trade twice
    stores it once.
    """

    def __init__(self, config: Settings | str | Path | None = None) -> None:
        self.settings = _settings(config)
        self._sink: Sink = build_sink(self.settings)
        self._started = False

    async def __aenter__(self) -> DataWriter:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        if not self._started:
            await self._sink.start()
            self._started = True

    async def close(self) -> None:
        if self._started:
            await self._sink.close()
            self._started = False

    async def write_trades(self, trades: Iterable[Trade]) -> int:
        return await self._write(list(trades))

    async def write_quotes(self, quotes: Iterable[TopOfBook]) -> int:
        return await self._write(list(quotes))

    async def write_candles(self, candles: Iterable[Candle]) -> int:
        return await self._write(list(candles))

    async def _write(self, batch: Sequence[Record]) -> int:
        await self.start()
        if batch:
            await self._sink.write(batch)
        return len(batch)


class RealtimePipeline:
    """Live ingestion of given symbols into the configured stores (the service, scoped).

    ``symbols`` are ``"venue:SYMBOL"`` strings, a mapping ``{venue: [symbols]}``,
    or plain symbols -- which go to every enabled venue that has no market
    discovery of its own (Binance, Polygon: the venues seed 002 is about).
    """

    def __init__(self, config: Settings | str | Path | None = None) -> None:
        self.settings = _settings(config)
        self.service: Service | None = None

    async def start(self, symbols: Iterable[str] | Mapping[str, Iterable[str]]) -> None:
        if self.service is not None:
            raise RuntimeError("the pipeline is already running")
        wanted = self._by_venue(symbols)
        settings = self.settings.model_copy(deep=True)
        for venue, names in wanted.items():
            settings.venues[venue].enabled = True
            settings.venues[venue].instruments = sorted(names)
        self.service = Service(settings)
        await self.service.start()

    async def stop(self) -> None:
        service, self.service = self.service, None
        if service is not None:
            await service.stop()

    def _by_venue(
        self, symbols: Iterable[str] | Mapping[str, Iterable[str]]
    ) -> dict[str, set[str]]:
        wanted: dict[str, set[str]] = {}
        if isinstance(symbols, Mapping):
            for venue, names in symbols.items():
                wanted.setdefault(venue, set()).update(names)
        else:
            plain: list[str] = []
            for symbol in symbols:
                venue, sep, name = symbol.partition(":")
                if sep:
                    wanted.setdefault(venue, set()).add(name)
                else:
                    plain.append(symbol)
            if plain:
                targets = [
                    name
                    for name, venue in self.settings.venues.items()
                    if venue.enabled and "markets" not in adapter_class(name).capabilities
                ]
                if not targets:
                    raise ValueError(
                        "plain symbols need an enabled venue without market discovery "
                        "(binance, polygon); or write them as 'venue:SYMBOL'"
                    )
                for name in targets:
                    wanted.setdefault(name, set()).update(plain)
        unknown = sorted(set(wanted) - set(self.settings.venues))
        if unknown:
            raise ValueError(f"unknown venue(s): {', '.join(unknown)}")
        return wanted
