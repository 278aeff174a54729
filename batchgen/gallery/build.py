"""`build_gallery`: the run folder's `gallery.html` and its pictures, from the state (its file,
or the run's schema in a PostgreSQL database, which every worker writes) or, in a folder
without one, index.jsonl."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from batchgen.export.entries import open_run_state
from batchgen.gallery.assets import (
    Job,
    SourceOf,
    local_source,
    make_pictures,
    poster_job,
    poster_name,
    thumbnail_job,
    thumbnail_name,
)
from batchgen.gallery.cards import Card, cards_of_index, cards_of_state
from batchgen.gallery.page import Advice, Pictures, render_page
from batchgen.money.pricing import load_prices
from batchgen.state.store import Store

PAGE_NAME = "gallery.html"


@dataclass(frozen=True, slots=True)
class Gallery:
    """A written gallery: its page, its cards, and the pictures it shows."""

    page: Path
    cards: int
    posters: int
    thumbnails: int


def build_gallery(
    run_dir: Path,
    workers: int | None = None,
    advice: Advice | None = None,
    database: str | None = None,
) -> Gallery:
    """Write `run_dir/gallery.html` (and `run_dir/gallery/`) for every job of the run (as its
    state, RUN/state.sqlite or the run's schema in the PostgreSQL `database`, holds them),
    making the pictures that are not there yet; `advice(row)` is what an unknown job's card
    says to do. Raises IndexInvalid for a folder with neither a state nor an index, StateError
    for an unreadable state or a run `database` does not hold."""
    cards, sources = _cards(run_dir, database)
    pictures = _pictures(run_dir, cards, sources, workers)
    page = run_dir / PAGE_NAME
    part = page.with_name(page.name + ".part")
    with open(part, "w", encoding="utf-8") as f:
        f.writelines(render_page(run_dir.name, cards, pictures, advice))
    os.replace(part, page)
    return Gallery(page, len(cards), len(pictures.posters), len(pictures.thumbnails))


def _cards(run_dir: Path, database: str | None) -> tuple[list[Card], dict[str, str]]:
    """The cards, and the local file of each input image that has one."""
    prices = load_prices()
    store = open_run_state(run_dir, database=database)
    if store is None:
        return list(cards_of_index(run_dir, prices)), {}
    with store:
        cards = list(cards_of_state(store, prices))
        return cards, _sources(cards, _image_source(store))


def _image_source(store: Store) -> SourceOf:
    def source_of(ref: str) -> str | None:
        found = store.inputs.image(ref)
        return None if found is None else found[3]

    return source_of


def _sources(cards: list[Card], source_of: SourceOf) -> dict[str, str]:
    refs = {ref for card in cards for ref in (card.image, card.image_tail) if ref}
    found = {ref: local_source(ref, source_of) for ref in refs}
    return {ref: source for ref, source in found.items() if source}


def _pictures(
    run_dir: Path, cards: list[Card], sources: dict[str, str], workers: int | None
) -> Pictures:
    videos = {card.video: card.sha256 for card in cards if card.video and card.sha256}
    missing = frozenset(video for video in videos if not (run_dir / video).is_file())
    jobs: list[Job] = [
        poster_job(run_dir, video, sha) for video, sha in videos.items() if video not in missing
    ]
    jobs += [thumbnail_job(ref, source) for ref, source in sources.items()]
    made = make_pictures(run_dir, jobs, workers)
    return Pictures(
        posters={v: poster_name(sha) for v, sha in videos.items() if poster_name(sha) in made},
        thumbnails={ref: thumbnail_name(ref) for ref in sources if thumbnail_name(ref) in made},
        missing=missing,
    )
