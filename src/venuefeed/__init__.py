"""venuefeed: market data from prediction markets and crypto/equity venues,
normalized, deduplicated and gap-checked."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("venuefeed")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+local"

from venuefeed.feed import Feed, open

__all__ = ["Feed", "__version__", "open"]
