"""The gallery page: one self-contained HTML file (inline CSS and plain JS, no network, links
relative to the run folder), one card per job, filters by status, QA finding, model and any
metadata column, and the money of what is shown (the price table's figure of the done jobs,
and the units the provider charged). Inputs are shown whole, portrait or landscape; an unknown
job says how to resolve it.

Thousands of cards stay fast: cards off screen are not laid out (`content-visibility`), input
thumbnails load lazily, videos load nothing until played (`preload="none"`), and a video's
poster is set only when its card comes near the viewport.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

from batchgen.gallery.cards import Card

CLEAN, FLAGGED, UNCHECKED = "clean", "flagged", "unchecked"
MAX_META_VALUES = 50  # a metadata column with more distinct values is not offered as a filter
Advice = Callable[[str], str]  # row id -> what to do about its unknown job


@dataclass(frozen=True, slots=True)
class Pictures:
    """What the cards can show, as paths relative to the run folder."""

    posters: Mapping[str, str] = field(default_factory=dict)  # video -> its poster frame
    thumbnails: Mapping[str, str] = field(default_factory=dict)  # image ref -> thumbnail
    missing: frozenset[str] = frozenset()  # videos of done jobs not in the run folder


def render_page(
    run: str, cards: list[Card], pictures: Pictures, advice: Advice | None = None
) -> Iterator[str]:
    """The page, in pieces; `advice` says what to do about an unknown job."""
    yield HEAD.format(title=escape(f"{run} · batchgen gallery"))
    yield _header(run, cards)
    yield '<main id="cards">\n'
    for card in cards:
        yield render_card(card, pictures, advice)
    yield "</main>\n"
    yield SCRIPT
    yield "</body>\n</html>\n"


def render_card(card: Card, pictures: Pictures, advice: Advice | None = None) -> str:
    """One job's <article>."""
    codes = " ".join(card.codes)
    checked = "1" if card.findings is not None else "0"
    meta = json.dumps({k: _meta_value(v) for k, v in card.metadata.items()}, sort_keys=True)
    return (
        f'<article class="card" id="{_id(card)}" data-status="{escape(card.status)}" '
        f'data-findings="{escape(codes)}" data-checked="{checked}" '
        f'data-model="{escape(card.model)}" data-meta="{escape(meta)}" '
        f'data-usd="{card.usd or 0}" data-units="{_units(card)}">\n'
        f'<div class="media">{_video(card, pictures)}{_inputs(card, pictures)}</div>\n'
        f'<div class="text">{_title(card)}{_prompt(card)}{_facts(card)}'
        f"{_findings(card)}{_reason(card)}{_way_out(card, advice)}</div>\n</article>\n"
    )


def _meta_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _units(card: Card) -> float:
    try:
        return float(card.units or 0)
    except ValueError:
        return 0.0


def _way_out(card: Card, advice: Advice | None) -> str:
    if card.status != "unknown" or advice is None:
        return ""
    looked = "".join(f"<li>{escape(line)}</li>" for line in card.lookups)
    evidence = f'<p class="looked">Looked up:</p><ul class="looked">{looked}</ul>' * bool(looked)
    return f'{evidence}<p class="way-out"><b>What to do:</b> {escape(advice(card.row_id))}</p>'


def _money(cards: list[Card]) -> str:
    usd = sum(card.usd or 0 for card in cards)
    units = sum(_units(card) for card in cards)
    done = sum(card.status == "done" for card in cards)
    return (
        f"${usd:,.2f} at the price table for {done} done video(s), "
        f"{units:g} units charged by the provider"
    )


def _header(run: str, cards: list[Card]) -> str:
    statuses = Counter(card.status for card in cards)
    codes = Counter(code for card in cards for code in card.codes)
    kinds = Counter(_kind(card) for card in cards if card.status == "done")
    summary = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    checks = ", ".join(f"{kinds[kind]} {kind}" for kind in (CLEAN, FLAGGED, UNCHECKED))
    status_options = _options([(s, f"{s} ({n})") for s, n in sorted(statuses.items())])
    finding_options = _options(
        [(kind, f"{kind} ({kinds[kind]})") for kind in (FLAGGED, CLEAN, UNCHECKED)]
        + [(code, f"{code} ({n})") for code, n in codes.most_common()]
    )
    models = Counter(card.model for card in cards)
    model_options = _options([(m, f"{m} ({n})") for m, n in sorted(models.items())])
    return (
        f"<header>\n<h1>{escape(run)}</h1>\n"
        f'<p class="summary">{len(cards)} jobs: {escape(summary)}. Videos: {checks}. '
        f'Cost: <span id="money">{escape(_money(cards))}</span>.</p>\n'
        '<form id="filters">\n'
        f'<label>Status <select id="status-filter"><option value="">all</option>'
        f"{status_options}</select></label>\n"
        f'<label>Findings <select id="finding-filter"><option value="">any</option>'
        f"{finding_options}</select></label>\n"
        f'<label>Model <select id="model-filter"><option value="">any</option>'
        f"{model_options}</select></label>\n"
        f'<label>Metadata <select id="meta-filter"><option value="">any</option>'
        f"{_meta_options(cards)}</select></label>\n"
        f'<output id="shown">{len(cards)} of {len(cards)} shown</output>\n</form>\n</header>\n'
    )


def _meta_options(cards: list[Card]) -> str:
    """`key=value` choices for every metadata column of few enough distinct values."""
    seen: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for card in cards:
        for key, value in card.metadata.items():
            seen[key][_meta_value(value)] += 1
    choices = [
        (json.dumps([key, value]), f"{key} = {value} ({n})")
        for key, values in sorted(seen.items())
        if len(values) <= MAX_META_VALUES
        for value, n in sorted(values.items())
    ]
    return _options(choices)


def _kind(card: Card) -> str:
    if card.findings is None:
        return UNCHECKED
    return FLAGGED if card.findings else CLEAN


def _options(values: Iterable[tuple[str, str]]) -> str:
    return "".join(f'<option value="{escape(v)}">{escape(label)}</option>' for v, label in values)


def _video(card: Card, pictures: Pictures) -> str:
    if card.video is None:
        return f'<div class="no-video">no video ({escape(card.status)})</div>'
    if card.video in pictures.missing:
        return '<div class="no-video">video missing: <code>batchgen verify</code> says more</div>'
    poster = pictures.posters.get(card.video)
    size = _size_attributes(card.probe)
    lazy_poster = f' data-poster="{_url(poster)}"' if poster else ""
    return f'<video controls preload="none" src="{_url(card.video)}"{lazy_poster}{size}></video>'


def _size_attributes(probe: Mapping[str, Any]) -> str:
    width, height = probe.get("width"), probe.get("height")
    return f' width="{int(width)}" height="{int(height)}"' if width and height else ""


def _inputs(card: Card, pictures: Pictures) -> str:
    figures = [
        _figure(ref, label, pictures)
        for ref, label in ((card.image, "input"), (card.image_tail, "end frame"))
        if ref
    ]
    return f'<div class="inputs">{"".join(figures)}</div>' if figures else ""


def _figure(ref: str, label: str, pictures: Pictures) -> str:
    picture = pictures.thumbnails.get(ref)
    if picture:
        body = f'<img loading="lazy" decoding="async" src="{_url(picture)}" alt="{label}">'
    else:
        body = f'<span class="no-image" title="{escape(ref)}">{escape(_short(ref))}</span>'
    return f"<figure>{body}<figcaption>{label}</figcaption></figure>"


def _title(card: Card) -> str:
    return (
        f'<h2>{escape(card.row_id)}</h2><span class="status status-{escape(card.status)}">'
        f"{escape(card.status)}</span>"
    )


def _prompt(card: Card) -> str:
    return f'<p class="prompt">{escape(card.prompt)}</p>' if card.prompt else ""


def _facts(card: Card) -> str:
    facts = [*card.params.items(), ("length", _length(card))]
    facts += [("file", _file(card.probe)), ("cost", _cost(card)), ("job", card.job_id)]
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts if v)
    return f'<dl class="params">{rows}</dl>'


def _length(card: Card) -> str:
    seconds = card.probe.get("duration_s")
    return f"{float(seconds):.2f} s" if seconds is not None else ""


def _file(probe: Mapping[str, Any]) -> str:
    if not probe.get("codec"):
        return ""
    audio = probe.get("audio_codec") or "no audio"
    return (
        f"{probe['codec']} {probe.get('width')}×{probe.get('height')}, "
        f"{probe.get('fps') or 0:g} fps, {probe.get('frames')} frames, {audio}"
    )


def _cost(card: Card) -> str:
    parts = [f"{card.units} units"] if card.units else []
    if card.usd is not None:
        parts.append(f"~${card.usd:.2f}")
    return ", ".join(parts)


def _findings(card: Card) -> str:
    if card.findings is None:
        return '<p class="unchecked">not checked</p>' if card.status == "done" else ""
    if not card.findings:
        scope = " (keyframes checked)" if card.probe.get("decode") == "keyframes" else ""
        return f'<p class="clean">no findings{scope}</p>'
    items = "".join(
        f'<li data-code="{escape(str(f.get("code")))}"><b>{escape(str(f.get("code")))}</b> '
        f"{escape(str(f.get('message', '')))}</li>"
        for f in card.findings
    )
    return f'<ul class="findings">{items}</ul>'


def _reason(card: Card) -> str:
    return f'<p class="reason">{escape(card.reason)}</p>' if card.reason else ""


def _short(ref: str) -> str:
    return ref if len(ref) <= 24 else ref[:21] + "…"


def _id(card: Card) -> str:
    return "job-" + escape(card.job_id)


def _url(path: str) -> str:
    return escape(quote(path))


HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f4f2; color: #222; }}
header {{ position: sticky; top: 0; z-index: 1; background: #fff; padding: 8px 16px;
  border-bottom: 1px solid #ddd; }}
h1 {{ font-size: 18px; margin: 0 0 4px; }}
.summary {{ margin: 0 0 6px; color: #555; }}
#filters {{ display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }}
#cards {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr));
  gap: 12px; padding: 12px 16px; }}
.card {{ background: #fff; border: 1px solid #ddd; border-radius: 6px; overflow: hidden;
  content-visibility: auto; contain-intrinsic-size: auto 520px; }}
.card[hidden] {{ display: none; }}
.card[data-findings]:not([data-findings=""]) {{ border-color: #d9822b; }}
.media video {{ display: block; width: 100%; height: 200px; object-fit: contain;
  background: #111; }}
.no-video {{ height: 200px; display: grid; place-items: center; background: #eee;
  color: #777; }}
.inputs {{ display: flex; gap: 6px; padding: 6px 8px 0; }}
.inputs figure {{ margin: 0; width: 96px; }}
.inputs img {{ display: block; width: 96px; height: 96px; object-fit: contain;
  background: #eee; }}
.inputs figcaption {{ font-size: 11px; color: #777; }}
.no-image {{ display: block; width: 96px; height: 64px; font-size: 10px; color: #777;
  background: #eee; overflow: hidden; word-break: break-all; }}
.text {{ padding: 6px 10px 10px; }}
h2 {{ display: inline; font-size: 15px; margin: 0 8px 0 0; }}
.status {{ font-size: 12px; padding: 1px 6px; border-radius: 8px; background: #ddd; }}
.status-done {{ background: #cdeccd; }}
.status-failed, .status-unknown {{ background: #f6cccc; }}
.prompt {{ margin: 6px 0; font-style: italic; }}
.params {{ display: grid; grid-template-columns: max-content 1fr; gap: 0 8px; margin: 6px 0;
  font-size: 12px; }}
.params dt {{ color: #777; }}
.params dd {{ margin: 0; overflow-wrap: anywhere; }}
.findings {{ margin: 6px 0 0; padding-left: 18px; color: #a34d00; }}
.clean {{ color: #2d7d2d; margin: 6px 0 0; }}
.unchecked {{ color: #777; margin: 6px 0 0; }}
.reason {{ margin: 6px 0 0; color: #a00; }}
.way-out {{ margin: 6px 0 0; padding: 6px; background: #fff6e0; border-radius: 4px;
  font-size: 12px; overflow-wrap: anywhere; }}
</style>
</head>
<body>
"""

SCRIPT = """<script>
(() => {
  "use strict";
  const cards = Array.from(document.querySelectorAll("article.card"));
  const status = document.getElementById("status-filter");
  const finding = document.getElementById("finding-filter");
  const model = document.getElementById("model-filter");
  const meta = document.getElementById("meta-filter");
  const shown = document.getElementById("shown");
  const money = document.getElementById("money");
  const hasMeta = (card) => {
    if (!meta.value) return true;
    const [key, value] = JSON.parse(meta.value);
    return JSON.parse(card.dataset.meta)[key] === value;
  };
  const matches = (card) => {
    const codes = card.dataset.findings ? card.dataset.findings.split(" ") : [];
    const checked = card.dataset.checked === "1";
    if (status.value && card.dataset.status !== status.value) return false;
    if (model.value && card.dataset.model !== model.value) return false;
    if (!hasMeta(card)) return false;
    switch (finding.value) {
      case "": return true;
      case "flagged": return codes.length > 0;
      case "clean": return checked && codes.length === 0;
      case "unchecked": return card.dataset.status === "done" && !checked;
      default: return codes.includes(finding.value);
    }
  };
  const apply = () => {
    let count = 0, usd = 0, units = 0, done = 0;
    for (const card of cards) {
      card.hidden = !matches(card);
      if (card.hidden) continue;
      count += 1;
      usd += Number(card.dataset.usd);
      units += Number(card.dataset.units);
      if (card.dataset.status === "done") done += 1;
    }
    shown.textContent = `${count} of ${cards.length} shown`;
    money.textContent = `$${usd.toFixed(2)} at the price table for ${done} done video(s), ` +
      `${Number(units.toFixed(3))} units charged by the provider`;
  };
  for (const filter of [status, finding, model, meta]) filter.addEventListener("change", apply);
  const posters = new IntersectionObserver((seen) => {
    for (const entry of seen) {
      if (!entry.isIntersecting) continue;
      entry.target.poster = entry.target.dataset.poster;
      posters.unobserve(entry.target);
    }
  }, { rootMargin: "800px" });
  document.querySelectorAll("video[data-poster]").forEach((video) => posters.observe(video));
  apply();
})();
</script>
"""
