"""venuefeed: market data from prediction markets and crypto/equity venues,
normalized, deduplicated and gap-checked."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("venuefeed")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+local"

from typing import TYPE_CHECKING, Any

from venuefeed.feed import Feed, open

if TYPE_CHECKING:
    from venuefeed.pipelines import DataWriter, RealtimePipeline

__all__ = ["DataWriter", "Feed", "RealtimePipeline", "__version__", "open"]


def __getattr__(name: str) -> Any:
    # Seed 002's names load the service and sinks only when asked for.
    if name in ("DataWriter", "RealtimePipeline"):
        from venuefeed import pipelines

        return getattr(pipelines, name)
    raise AttributeError(f"module 'venuefeed' has no attribute {name!r}")
