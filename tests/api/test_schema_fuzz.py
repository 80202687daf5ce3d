"""schemathesis over the app's OpenAPI schema: no generated request gets a server error.

The app shares its event loop with the service it controls, so it cannot run
in the ASGI test client's own loop; instead the real service and the real
uvicorn server run on a loop in a background thread and schemathesis sends
its requests over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis

from venuefeed.api.server import ApiServer
from venuefeed.service import Service

from .apihelp import make_settings

DOCUMENTED_5XX = {
    ("GET", "/readyz"): {503},
    ("GET", "/api/status"): {503},
    ("GET", "/api/v1/ingestion/health"): {503},
}
"""Not-ready and unhealthy are documented 503s, not failures."""


class ServedInThread:
    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        settings = make_settings(tmp, **{"ingestion.snapshot_interval_seconds": 60})
        self.service = Service(settings)
        self.api = ApiServer(self.service, settings.api)
        self.run(self.service.start(continuous=False))
        self.run(self.api.start())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.run(self.api.stop())
        self.run(self.service.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedInThread]:
    served = ServedInThread(tmp_path_factory.mktemp("fuzz"))
    yield served
    served.close()


SETTINGS = hypothesis.settings(
    max_examples=6,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


def test_no_server_errors(served: ServedInThread) -> None:
    schema = schemathesis.openapi.from_url(served.api.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # every route is in the schema (the socket is not HTTP)
    for operation in operations:

        @SETTINGS
        @hypothesis.given(case=operation.as_strategy())
        def no_server_error(case: Any) -> None:
            response = case.call(base_url=served.api.url, timeout=30)
            allowed = DOCUMENTED_5XX.get((case.method.upper(), case.path), set())
            assert response.status_code < 500 or response.status_code in allowed, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:300]}"
            )

        no_server_error()
