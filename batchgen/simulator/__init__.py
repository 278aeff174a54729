"""A local Kling image2video server for demos, tests and benchmarks.

It imitates one provider, chosen by `SimulatorConfig.profile` (profiles.py; kling-api.md §16):
"cometapi" (the default: CometAPI's relay, the stingiest documented behaviour) or "kling"
(Kling's own API). It answers that provider's paths, credentials, envelopes, task states and
error codes, serves real MP4s made from the input images, posts status-change callbacks, and
takes latency, slots, limits and faults as switches:

    with running_simulator(SimulatorConfig(seed=1, latency=(0.5, 1.5), slots=4)) as sim:
        sim.base_url              # "http://127.0.0.1:PORT"
        sim.api_path              # "/kling/v1/videos/image2video" (kling: "/v1/videos/…")
        sim.stats()               # counters, as GET /_sim/stats
        sim.reconfigure(fail_rate=0.2)

Modules: config (settings), profiles (what differs between providers), dialects (each
provider's answers), auth (bearer key, JWT), answers (HTTP answers, HTML pages), envelopes
(Kling's JSON bodies), tasks (task lifecycle and slots), validation (create-body rules),
pricing (units charged), faults (seeded fault decisions), links (signed video URLs, Range),
account (the account behind the API), callbacks (status-change webhooks), footage (what a
task's video shows), motion (its frames), defects (video defects and HTML pages on demand),
video (MP4 rendering), library (input images and rendered videos), asgi (ASGI plumbing), app
(routes), server (uvicorn).

Stats keys: profile; requests_total (routed API requests), creates_received,
creates_accepted, image_rejections (accepted creates whose image will fail the task),
invalid_creates, duplicate_external_id_refusals (kling), account_error_refusals,
throttled_1303, throttled_1302, auth_refusals {Kling code: refusals}, queries (by task id),
external_lookups (kling: a path id that is no task id), not_found, list_calls (kling),
unrouted (paths and methods outside the API), downloads_started, downloads_completed,
range_requests, expired_url_refusals, faults {kind: count} (server_error,
reset_before_accept, reset_after_accept, gateway_timeout, malformed_answer, slow,
not_found_grace, truncate, html_page), video_defects {kind: count},
submissions_per_external_id {external_task_id: accepted creates}, callbacks_sent (answered
2xx), callbacks_failed, callbacks_dropped, callbacks_skipped (not loopback), tasks_total,
active, max_active, busy_seconds (generation time of the tasks that have ended), slots,
video_renders, process_cpu_seconds; and with `stats(with_tasks=True)` or `?tasks=1`,
task_spans {task_id: [created, finishes]} in Unix seconds, tasks_by_external_id
{external_task_id: [task ids, oldest first]} (the provider's dashboard) and queries_by_task
{task_id: queries by its task id}.
"""

from batchgen.simulator.app import KlingSimulator
from batchgen.simulator.config import SimulatorConfig
from batchgen.simulator.server import (
    PortUnavailable,
    SimulatorHandle,
    running_app,
    running_simulator,
    serve,
)

__all__ = [
    "KlingSimulator",
    "PortUnavailable",
    "SimulatorConfig",
    "SimulatorHandle",
    "running_app",
    "running_simulator",
    "serve",
]
