"""`batchgen gallery RUN`, opened in headless Chromium the way a person would open it: from a
file:// URL, offline, every job on one page."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from batchgen.gallery import build_gallery
from batchgen.money.pricing import price_of
from batchgen.state.records import JobRecord
from batchgen.state.store import Store
from tests.conftest import make_images, read_index, run_cli, simulator

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)
# How long a wait may take before the page is judged broken: generous, since the suite runs
# four workers on two cores beside the browser; a page that works is seen at once.
WAIT = 30.0


def chromium_paths() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium driven by chromedriver; skipped when missing, unless
    BATCHGEN_REQUIRE_BROWSER=1 makes that a failure."""
    paths = chromium_paths()
    if paths is None:
        message = "needs chromium and chromedriver (apt-get install chromium chromium-driver)"
        if os.environ.get("BATCHGEN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"BATCHGEN_REQUIRE_BROWSER=1 but the gallery test {message}")
        pytest.skip(f"the gallery test {message}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    driver.set_script_timeout(WAIT)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def until(condition: Callable[[], Any], what: str) -> Any:
    """Wait up to WAIT seconds for `condition()` to be truthy; its value."""
    deadline = time.monotonic() + WAIT
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def manifest_with_an_end_frame(folder: Path, rows: int) -> Path:
    images = make_images(folder / "images")
    entries: list[dict[str, Any]] = [
        {"id": f"clip-{i:03d}", "image": images[i % 3], "prompt": f"slow pan, take {i}"}
        for i in range(rows)
    ]
    entries[0]["image_tail"] = images[1]
    doc = {"name": "batch", "defaults": {"model_name": "kling-v2-1", "mode": "pro"}}
    path = folder / "batch.yaml"
    path.write_text(yaml.safe_dump({**doc, "rows": entries}))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with clean, frozen and failed jobs, and its gallery."""
    folder = tmp_path_factory.mktemp("gallery")
    manifest = manifest_with_an_end_frame(folder, 10)
    with simulator(fail_rate=0.25, frozen_rate=0.3) as sim:
        run_cli("run", manifest, "-o", folder / "out", base_url=sim.base_url)
    run = folder / "out" / "batch"
    assert run_cli("gallery", run) == 0
    return run


def jobs_of(run_dir: Path) -> dict[str, JobRecord]:
    """The run's jobs by row id."""
    with Store.open(run_dir / "state.sqlite") as store:
        return {job.row_id: job for job, _ in store.checks.jobs_with_checks()}


def path_of(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


def visible(browser: Any, selector: str) -> list[Any]:
    return [e for e in browser.find_elements("css selector", selector) if e.is_displayed()]


def choose(browser: Any, select_id: str, value: str) -> list[str]:
    """Pick `value` in a filter; the row ids of the cards left visible."""
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", select_id)).select_by_value(value)
    return sorted(card.find_element("tag name", "h2").text for card in visible(browser, ".card"))


def test_the_gallery_shows_every_job_in_headless_chromium(browser, run_dir):
    """Every job has a card, every done job a playable video with its poster, the inputs and
    end frame show, failed jobs show their reason, and the page logs no error."""
    jobs = jobs_of(run_dir)
    done = {row for row, job in jobs.items() if job.status == "done"}
    failed = {row for row, job in jobs.items() if job.status == "failed"}
    assert done and failed, "the seeded run should have both"
    browser.get((run_dir / "gallery.html").as_uri())
    cards = until(lambda: browser.find_elements("css selector", "article.card"), "the cards")
    assert sorted(card.find_element("tag name", "h2").text for card in cards) == sorted(jobs)
    videos = browser.find_elements("tag name", "video")
    assert len(videos) == len(done)
    for video in videos:
        assert path_of(video.get_attribute("src")).is_file()
        poster = until(lambda v=video: v.get_attribute("poster"), "a poster")
        assert path_of(poster).is_relative_to(run_dir / "gallery")
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    images = browser.find_elements("css selector", ".inputs img")
    assert len(images) == len(jobs) + 1  # every input, and the one end frame
    until(
        lambda: browser.execute_script(
            "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
        ),
        "every input image to load",
    )
    width = browser.execute_script(
        "const v = document.querySelector('video'); v.preload = 'metadata'; v.load();"
        "return new Promise(r => {"
        "  v.addEventListener('loadedmetadata', () => r(v.videoWidth));"
        "  v.addEventListener('error', () => r('media error ' + (v.error && v.error.code)));"
        "});"
    )
    assert isinstance(width, int) and width > 0, width
    for row in failed:
        card = browser.find_element("id", f"job-{jobs[row].job_id}")
        assert card.find_element("class name", "reason").text == jobs[row].last_error
    browser.save_screenshot(str(run_dir / "gallery.png"))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_the_gallery_filters_by_status_and_by_finding(browser, run_dir):
    """Choosing a status or a finding leaves exactly the cards that have it."""
    index = read_index(run_dir)
    frozen = sorted(e["row_id"] for e in index if any(q["code"] == "frozen" for q in e["qa"]))
    clean = sorted(e["row_id"] for e in index if e["qa"] == [])
    jobs = jobs_of(run_dir)
    failed = sorted(row for row, job in jobs.items() if job.status == "failed")
    assert frozen and clean and failed
    browser.get((run_dir / "gallery.html").as_uri())
    until(lambda: browser.find_elements("css selector", "article.card"), "the cards")
    assert choose(browser, "status-filter", "failed") == failed
    assert browser.find_element("id", "shown").text == f"{len(failed)} of 10 shown"
    assert choose(browser, "status-filter", "") == sorted(jobs)
    assert choose(browser, "finding-filter", "frozen") == frozen
    assert choose(browser, "finding-filter", "clean") == clean
    assert choose(browser, "status-filter", "failed") == []  # failed and clean: none
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_a_run_folder_without_its_state_gets_a_gallery_of_its_index(run_dir, tmp_path):
    """From index.jsonl alone the gallery shows every done video, with its findings."""
    copy = tmp_path / "batch"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("state.sqlite*", "gallery*"))
    built = build_gallery(copy)
    page = built.page.read_text()
    index = read_index(copy)
    assert built.cards == len(index) == page.count("<article") == page.count("<video")
    assert page.count('data-code="frozen"') == sum(codes(e).count("frozen") for e in index)


def test_a_done_job_whose_video_is_gone_says_so_instead_of_a_broken_player(run_dir, tmp_path):
    """A missing video gets a note pointing at `batchgen verify`, not a <video> to nowhere."""
    copy = tmp_path / "batch"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("gallery*"))
    gone = read_index(copy)[0]
    (copy / gone["video"]).unlink()
    page = build_gallery(copy).page.read_text()
    assert f'src="{gone["video"]}"' not in page and "video missing" in page
    assert page.count("<video") == len(read_index(copy)) - 1


HOSTILE = {
    "probe": {"width": "640px", "height": [1], "fps": "x", "duration_s": "5s", "frames": -1},
    "qa": "not a list",
    "final_unit_deduction": {"units": 5},
    "sha256": ["no"],
}


@pytest.mark.parametrize("broken", [*HOSTILE, "probe of another type", "findings of junk"])
def test_an_index_with_values_of_the_wrong_type_still_gets_a_gallery(run_dir, tmp_path, broken):
    """An index line whose probe says `width: "640px"` (or whose findings, cost or hash are of
    the wrong type) gives a page showing the job without those values, never a traceback."""
    copy = tmp_path / "batch"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("state.sqlite*", "gallery*"))
    lines = read_index(copy)
    changes = {
        **HOSTILE,
        "probe of another type": {"probe": ["width", 640]},
        "findings of junk": {"qa": [1, "frozen", None, {"code": {"x": 1}}]},
    }
    lines[0].update(changes[broken] if broken not in HOSTILE else {broken: HOSTILE[broken]})
    (copy / "index.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert run_cli("gallery", copy) == 0
    page = (copy / "gallery.html").read_text()
    assert page.count("<article") == len(lines) and "640px" not in page


def codes(entry: dict[str, Any]) -> list[str]:
    return [finding["code"] for finding in entry["qa"]]


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of two models and two scenes, a portrait input, and one unknown job."""
    from PIL import Image

    from tests.runs.test_resilience import leave_submitting

    folder = tmp_path_factory.mktemp("mixed")
    images = make_images(folder / "images")
    Image.new("RGB", (320, 560), (200, 40, 90)).save(folder / "images" / "portrait.jpg")
    rows: list[dict[str, Any]] = [
        {
            "id": f"clip-{i}",
            "image": "images/portrait.jpg" if i == 0 else images[i % 3],
            "prompt": f"take {i}",
            "model_name": "kling-v2-master" if i % 2 else "kling-v2-1",
            "scene": "beach" if i < 3 else "city",
        }
        for i in range(6)
    ]
    manifest = folder / "mixed.yaml"
    manifest.write_text(yaml.safe_dump({"name": "mixed", "rows": rows}, sort_keys=False))
    out = folder / "out"
    leave_submitting(manifest, out)  # its create's answer lost: unknown on CometAPI
    with simulator() as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 1
    assert run_cli("gallery", manifest, "-o", out) == 0
    return out / "mixed"


def test_the_gallery_shows_inputs_whole_a_way_out_of_unknown_jobs_filters_and_cost(
    browser, mixed_run
):
    """A portrait input is shown whole (not cropped to a strip); the unknown job shows what
    its look-ups answered and how to resolve it; filters by model and by a metadata column
    leave their cards; the cost total follows what is shown."""
    jobs = jobs_of(mixed_run)
    (unknown,) = [job for job in jobs.values() if job.status == "unknown"]
    browser.get((mixed_run / "gallery.html").as_uri())
    until(lambda: browser.find_elements("css selector", "article.card"), "the cards")
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    until(
        lambda: browser.execute_script(
            "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
        ),
        "every input image to load",
    )
    fits = browser.execute_script(
        "return [...document.querySelectorAll('.inputs img')]"
        ".map(i => getComputedStyle(i).objectFit)"
    )
    assert set(fits) == {"contain"}
    way_out = browser.find_element("id", f"job-{unknown.job_id}").find_element(
        "class name", "way-out"
    )
    assert "batchgen adopt" in way_out.text and f"--job {unknown.row_id}" in way_out.text
    looked = browser.find_element("id", f"job-{unknown.job_id}").find_element(
        "css selector", "ul.looked"
    )
    assert "path: not found" in looked.text  # what its look-ups answered
    done = [job for job in jobs.values() if job.status == "done"]
    usd = sum(price_of(job.request).usd or 0 for job in done)
    money = browser.find_element("id", "money").text
    assert money.startswith(f"${usd:,.2f} at the price table for {len(done)} done video(s)")
    v2 = sorted(row for row, job in jobs.items() if job.request["model_name"] == "kling-v2-master")
    assert choose(browser, "model-filter", "kling-v2-master") == v2
    choose(browser, "model-filter", "")
    beach = choose(browser, "meta-filter", '["scene", "beach"]')
    assert beach == ["clip-0", "clip-1", "clip-2"]
    shown_done = sum(jobs[row].status == "done" for row in beach)
    assert f"for {shown_done} done video(s)" in browser.find_element("id", "money").text
    choose(browser, "meta-filter", "")
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(mixed_run / "gallery.png"))
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
