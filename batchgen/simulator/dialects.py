"""How each provider words an outcome: the same Kling-level event (a task found, code 1303, a
server error...) becomes a different HTTP answer on Kling's own API and on CometAPI's relay
(kling-api.md §5, §6, §16, §17 E1, E6, E10, E12, E13). Pure; seeded choices take `rng`.

Kling answers with its integer codes in `{code, message, request_id}`. CometAPI's relay, built
on the new-api gateway, answers with its own string codes in `{code, message, data: null}`
(`task_failed` keeps Kling's message, `fail_to_fetch_task` the upstream status, 429s get a
fixed Chinese message) or with its gateway envelope `{"error": {message, type, param, code}}`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Protocol

from batchgen.simulator import envelopes
from batchgen.simulator.answers import (
    GIN_JSON,
    Answer,
    gin_not_found,
    json_answer,
    moved_to,
    timeout_page,
    web_page,
)

KLING_5XX = (5000, 5001, 5002)
THROTTLES = (1302, 1303)
SATURATED = "当前分组上游负载已饱和，请稍后再试"
QUOTA = "user quota is not enough"
GATEWAY_MESSAGES = {  # Kling code: (HTTP status, gateway message) for the relay's own refusals
    **{code: (401, "invalid token") for code in (1000, 1001, 1002, 1003, 1004)},
    1103: (403, "no permission for this model"),
    1304: (403, "IP not allowed"),
}


class Dialect(Protocol):
    """The answers one provider gives."""

    def created(self, data: Any, request_id: str) -> Answer:
        """A create accepted; `data` is the new task."""

    def found(self, data: Any, request_id: str) -> Answer:
        """A task (or a page of tasks) read."""

    def refusal(
        self, code: int, message: str | None, request_id: str, rng: random.Random
    ) -> Answer:
        """Kling's code `code` (with `message`, else Kling's own) as this provider says it."""

    def not_found(self, key: str, request_id: str) -> Answer:
        """No task has this id."""

    def server_error(
        self, on_create: bool, model: str, request_id: str, rng: random.Random
    ) -> Answer:
        """A 5xx instead of an answer: the request was not processed."""

    def not_served(self, request_id: str) -> Answer:
        """A method the API path does not serve (e.g. the list where there is none)."""

    def elsewhere(self, request_id: str) -> Answer:
        """A path outside the API."""

    def gateway_timeout(self) -> Answer:
        """The edge gave up waiting for the origin."""

    def web_page(self) -> Answer:
        """The provider's web page, with status 200."""


@dataclass(frozen=True)
class KlingDialect:
    """Kling's own API: integer codes, HTTP status per code."""

    host: str = "api-singapore.klingai.com"

    def created(self, data: Any, request_id: str) -> Answer:
        return json_answer(200, envelopes.success(data, request_id, "success"))

    def found(self, data: Any, request_id: str) -> Answer:
        return json_answer(200, envelopes.success(data, request_id))

    def refusal(
        self, code: int, message: str | None, request_id: str, rng: random.Random
    ) -> Answer:
        return _kling(code, request_id, message)

    def not_found(self, key: str, request_id: str) -> Answer:
        return _kling(1203, request_id, f"task {key!r} does not exist")

    def server_error(
        self, on_create: bool, model: str, request_id: str, rng: random.Random
    ) -> Answer:
        return _kling(rng.choice(KLING_5XX), request_id)

    def not_served(self, request_id: str) -> Answer:
        return _kling(1202, request_id)

    def elsewhere(self, request_id: str) -> Answer:
        return _kling(1202, request_id)

    def gateway_timeout(self) -> Answer:
        return timeout_page(self.host)

    def web_page(self) -> Answer:
        return web_page("Kling AI")


@dataclass(frozen=True)
class RelayDialect:
    """CometAPI's relay (new-api): string codes, gateway envelopes, gin's and the site's pages."""

    host: str = "api.cometapi.com"
    home: str = "https://www.cometapi.com/"

    def created(self, data: Any, request_id: str) -> Answer:
        return json_answer(200, {"code": 0, "message": "success", "data": data}, GIN_JSON)

    def found(self, data: Any, request_id: str) -> Answer:
        return json_answer(200, envelopes.success(data, request_id), GIN_JSON)

    def refusal(
        self, code: int, message: str | None, request_id: str, rng: random.Random
    ) -> Answer:
        text = message or envelopes.message_of(code)
        if code in GATEWAY_MESSAGES:
            status, words = GATEWAY_MESSAGES[code]
            return _gateway(status, words, request_id)
        if code in (1100, 1101, 1102):
            return json_answer(403, {"code": None, "message": QUOTA}, GIN_JSON)
        if code in THROTTLES and rng.random() < 0.5:
            return _task_error(429, "fail_to_fetch_task", SATURATED)
        if code in KLING_5XX:
            return _upstream_failure(code, request_id)
        return _task_error(400, "task_failed", text)

    def not_found(self, key: str, request_id: str) -> Answer:
        return _task_error(400, "task_not_exist", "task_not_exist")

    def server_error(
        self, on_create: bool, model: str, request_id: str, rng: random.Random
    ) -> Answer:
        if rng.random() < 0.5:
            return _gateway(500, "internal server error", request_id)
        if on_create:
            return _no_channel(model, request_id)
        return _upstream_failure(rng.choice(KLING_5XX), request_id)

    def not_served(self, request_id: str) -> Answer:
        return gin_not_found()

    def elsewhere(self, request_id: str) -> Answer:
        return moved_to(self.home)

    def gateway_timeout(self) -> Answer:
        return timeout_page(self.host)

    def web_page(self) -> Answer:
        return web_page("CometAPI")


def _kling(code: int, request_id: str, message: str | None = None) -> Answer:
    return json_answer(
        envelopes.http_status(code), envelopes.kling_error(code, request_id, message)
    )


def _task_error(status: int, code: str, message: str) -> Answer:
    """new-api's task error: a string code, `data` null."""
    return json_answer(status, {"code": code, "message": message, "data": None}, GIN_JSON)


def _upstream_failure(code: int, request_id: str) -> Answer:
    """Kling's 5xx passed on as `fail_to_fetch_task`: its status, its body as the message."""
    upstream = json.dumps(envelopes.kling_error(code, request_id), separators=(",", ":"))
    return _task_error(envelopes.http_status(code), "fail_to_fetch_task", upstream)


def _gateway(status: int, message: str, request_id: str) -> Answer:
    """CometAPI's gateway envelope, request id inside the message, `code` empty."""
    error = {
        "message": f"{message} (request id: {request_id})",
        "type": "comet_api_error",
        "param": "",
        "code": "",
    }
    return json_answer(status, {"error": error}, GIN_JSON)


def _no_channel(model: str, request_id: str) -> Answer:
    """The distributor found no upstream channel for the model (E10)."""
    message = (
        f"no available channel for group default and model {model} (distributor) "
        f"(request id: {request_id})"
    )
    error = {"code": "model_not_found", "message": message, "type": "comet_api_error"}
    return json_answer(503, {"error": error}, GIN_JSON)
