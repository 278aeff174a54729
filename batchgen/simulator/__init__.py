"""A local Kling image2video server for demos, tests and benchmarks.

It answers the same paths, envelopes, task states and error codes as the API batchgen targets
(CometAPI's relay of Kling, ../shared/kling-api.md, decisions of §16), serves real MP4s made
from the input images, and takes latency, slots, limits and faults as switches:

    with running_simulator(SimulatorConfig(seed=1, latency=(0.5, 1.5), slots=4)) as sim:
        sim.base_url              # "http://127.0.0.1:PORT"
        sim.stats()               # counters, as GET /_sim/stats
        sim.reconfigure(fail_rate=0.2)

Modules: config (settings), tasks (task lifecycle and slots), validation (create-body rules),
pricing (units charged), faults (seeded fault decisions), envelopes (JSON bodies), links
(signed video URLs, Range), account (the account behind the API), footage (what a task's
video shows), motion (its frames), defects (video defects and HTML pages on demand), video
(MP4 rendering), library (input images and rendered videos), asgi (ASGI plumbing), app
(routes), server (uvicorn).

Stats keys: requests_total, creates_received, creates_accepted, invalid_creates,
duplicate_external_id_refusals, account_error_refusals, throttled_1303, throttled_1302,
queries, external_lookups, not_found, list_calls, downloads_started, downloads_completed,
range_requests, expired_url_refusals, faults {kind: count}, video_defects {kind: count},
submissions_per_external_id
{external_task_id: accepted creates}, tasks_total, active, max_active, busy_seconds (generation
time of the tasks that have ended), slots, video_renders; and with `stats(with_tasks=True)` or
`?tasks=1`, task_spans {task_id: [created, finishes]} in Unix seconds.
"""

from batchgen.simulator.app import KlingSimulator
from batchgen.simulator.config import SimulatorConfig
from batchgen.simulator.server import SimulatorHandle, running_simulator, serve

__all__ = ["KlingSimulator", "SimulatorConfig", "SimulatorHandle", "running_simulator", "serve"]
