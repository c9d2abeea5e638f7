"""A client of `nextbest serve`, sync and async (httpx).

    client = Client("http://127.0.0.1:8000", experiment="shop")
    decision = client.decide([{"device": "mobile", "basket": 20.0}])[0]
    client.react(decision["event_id"], 1)
    client.status()["events"]

    async with AsyncClient("http://127.0.0.1:8000", experiment="shop") as client:
        decisions = await client.decide(contexts)

An answer other than 2xx raises `ServiceError` with the server's message, the field it names and the
status code.
"""

from __future__ import annotations

from typing import Any

import httpx

from nextbest.errors import NextbestError


class ServiceError(NextbestError):
    """The service refused a request: `status` (HTTP code), `field` (e.g. contexts[3].device) or None."""

    def __init__(self, message: str, status: int, field: str | None = None):
        super().__init__(message)
        self.status, self.field = status, field


def _body(contexts: list[dict[str, Any]], event_ids: list[str] | None, greedy: bool, defer_activation: bool) -> dict:
    body: dict[str, Any] = {"contexts": contexts, "greedy": greedy, "defer_activation": defer_activation}
    if event_ids is not None:
        body["event_ids"] = event_ids
    return body


def _checked(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    try:
        payload = response.json()
        message, field = payload.get("error", response.text), payload.get("field")
    except ValueError:
        message, field = response.text, None
    raise ServiceError(f"{response.request.method} {response.request.url.path}: {response.status_code} {message}",
                       response.status_code, field)


class _Routes:
    def __init__(self, experiment: str, api_key: str | None):
        self.experiment = experiment
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def path(self, suffix: str = "") -> str:
        return f"/v1/experiments/{self.experiment}{suffix}"


class Client(_Routes):
    """Blocking client; one connection pool, reused. Use as a context manager or call `close()`."""

    def __init__(self, base_url: str, experiment: str, api_key: str | None = None, timeout: float = 10.0):
        super().__init__(experiment, api_key)
        self.http = httpx.Client(base_url=base_url, headers=self.headers, timeout=timeout)

    def decide(self, contexts: list[dict[str, Any]], *, event_ids: list[str] | None = None, greedy: bool = False,
               defer_activation: bool = False) -> list[dict[str, Any]]:
        """One decision per context: event_id, action (or action_0, …), probability, log_probability, value, checkpoint."""
        return _checked(self.http.post(self.path("/decisions"), json=_body(contexts, event_ids, greedy, defer_activation)))["decisions"]

    def react(self, event_id: str, reaction: float | bool | str) -> dict[str, Any]:
        return _checked(self.http.post(self.path(f"/events/{event_id}/reaction"), json={"reaction": reaction}))

    def activate(self, event_id: str) -> dict[str, Any]:
        return _checked(self.http.post(self.path(f"/events/{event_id}/activate")))

    def status(self) -> dict[str, Any]:
        return _checked(self.http.get(self.path()))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Routes):
    """The same calls, awaitable."""

    def __init__(self, base_url: str, experiment: str, api_key: str | None = None, timeout: float = 10.0):
        super().__init__(experiment, api_key)
        self.http = httpx.AsyncClient(base_url=base_url, headers=self.headers, timeout=timeout)

    async def decide(self, contexts: list[dict[str, Any]], *, event_ids: list[str] | None = None, greedy: bool = False,
                     defer_activation: bool = False) -> list[dict[str, Any]]:
        response = await self.http.post(self.path("/decisions"), json=_body(contexts, event_ids, greedy, defer_activation))
        return _checked(response)["decisions"]

    async def react(self, event_id: str, reaction: float | bool | str) -> dict[str, Any]:
        return _checked(await self.http.post(self.path(f"/events/{event_id}/reaction"), json={"reaction": reaction}))

    async def activate(self, event_id: str) -> dict[str, Any]:
        return _checked(await self.http.post(self.path(f"/events/{event_id}/activate")))

    async def status(self) -> dict[str, Any]:
        return _checked(await self.http.get(self.path()))

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
