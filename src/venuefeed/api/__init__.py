"""Control API, health, Prometheus metrics and the live dashboard."""

from venuefeed.api.app import create_app
from venuefeed.api.server import ApiConfigError, ApiServer

__all__ = ["ApiConfigError", "ApiServer", "create_app"]
