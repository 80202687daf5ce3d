"""venuefeed: market data from prediction markets and crypto/equity venues,
normalized, deduplicated and gap-checked."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from venuefeed.feed import Feed, open
    from venuefeed.pipelines import DataWriter, RealtimePipeline

    __version__: str

__all__ = ["DataWriter", "Feed", "RealtimePipeline", "__version__", "open"]


def __getattr__(name: str) -> Any:
    # Everything loads only when asked for: the SQLite writer is a child process
    # importing ``venuefeed.sinks.sqlite_process``, and each of its starts would
    # otherwise pay ~0.4 s for the client, the venues and aiohttp it never uses.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("venuefeed")
        except PackageNotFoundError:  # running from a source tree without installing
            return "0.0.0+local"
    if name in ("Feed", "open"):
        from venuefeed import feed

        return getattr(feed, name)
    if name in ("DataWriter", "RealtimePipeline"):
        from venuefeed import pipelines

        return getattr(pipelines, name)
    raise AttributeError(f"module 'venuefeed' has no attribute {name!r}")
