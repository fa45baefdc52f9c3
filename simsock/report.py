"""The page ``simsock report`` writes: every experiment's claims, verdicts, numbers and figures.

One self-contained HTML file (``report.html``, figures linked by relative path, so the
directory can be copied or served as it is):

1. a summary table — experiment, its claims, how many hold (PASS/FAIL/…), a few key
   numbers — each row linking to the experiment's section;
2. a table of contents;
3. per experiment: its title and what it sets up, each claim's text next to its status
   and the numbers that decided it, the figures, and the parameters it ran with.

Claim statuses and texts come from ``result.json`` when the runner wrote them there
(``claim_status``: status, text and checks with measured values per claim); otherwise the
status comes from the check's failures (a claim with none against it is PASS) and the text
from :data:`simsock.claims.TEXT` where that exists. The page does not depend on the time
or the machine: the same results give the same bytes.

A short script marks a figure whose file is missing (``data-broken-images`` on ``<body>``
counts them, ``data-images`` counts all) and shows a note in its place instead of the
browser's broken-image icon; tests read these attributes from a headless browser.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any

from simsock import experiment
from simsock.claims import TEXT, format_number

__all__ = ["render", "write"]

_STATUS_CLASS = {"PASS": "pass", "FAIL": "fail", "ERROR": "fail", "NOT MEASURED": "warn",
                 "UNCHECKED": "warn"}

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } .lead { color: #555; margin-top: 0; }
section { border-top: 1px solid #ccc; padding-top: 0.6em; margin-top: 2.2em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; }
th, td { text-align: left; vertical-align: top; padding: 0.3em 0.8em 0.3em 0; border-bottom: 1px solid #eee; }
th { border-bottom: 2px solid #ccc; }
.status { font-weight: bold; white-space: nowrap; }
.pass { color: #1a7f37; } .fail { color: #cf222e; } .warn { color: #9a6700; }
.num { font-variant-numeric: tabular-nums; color: #444; font-size: 0.92em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.missing { padding: 1em; border: 2px dashed #cf222e; color: #cf222e; }
nav ol { columns: 2; } code, pre { font-size: 0.9em; } pre { white-space: pre-wrap; }
details { margin: 0.5em 0 1em; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.querySelectorAll("img"), broken = 0;
  images.forEach(function (img) {
    if (!img.complete || img.naturalWidth === 0) {
      broken += 1;
      var note = document.createElement("div");
      note.className = "missing";
      note.textContent = "figure not found: " + img.getAttribute("src");
      img.replaceWith(note);
    }
  });
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-broken-images", String(broken));
});
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _claim_texts() -> dict[str, str]:
    return dict(TEXT)


def _number(value: Any) -> str:
    return format_number(value)


def _docstring_claims(name: str) -> dict[str, str]:
    """Claim texts an experiment's docstring states (``C5.4  UDP does not block …``): the
    first sentence after each id, for runs whose result.json carries no claim texts."""
    try:
        doc = " ".join((experiment.load(name).__doc__ or "").split())
    except experiment.ExperimentError:
        return {}
    return {m.group(1): m.group(2) for m in re.finditer(r"\b(C\d+\.\d+)\s+([A-Z][^.]*\.)", doc)}


def _claims(outcome) -> list[dict[str, Any]]:
    """Per claim: id, status, text and the lines under it (numbers, failures)."""
    saved: dict = {}
    try:
        saved = json.loads(Path(outcome.result_path).read_text(encoding="utf-8")).get("claim_status") or {}
    except (OSError, ValueError, AttributeError):
        saved = {}
    texts = {**_docstring_claims(outcome.name), **_claim_texts()}
    failures_by_claim = outcome.claim_status() if hasattr(outcome, "claim_status") else {}
    statuses = outcome.statuses() if hasattr(outcome, "statuses") else {}
    rows = []
    for claim in outcome.claims:
        entry = saved.get(claim) if isinstance(saved, dict) else None
        if isinstance(entry, dict):
            checks = [c for c in entry.get("checks", []) if isinstance(c, dict)]
            status = entry.get("status") or statuses.get(claim, "PASS")
            text = entry.get("text") or texts.get(claim, "")
            lines = [(c.get("status", ""), c.get("text", "")) for c in checks]
            numbers = [f"{k} = {_number(v)}" for c in checks for k, v in (c.get("measured") or {}).items()]
        else:
            failures = failures_by_claim.get(claim, [])
            status = statuses.get(claim) or ("FAIL" if failures else "PASS")
            text = texts.get(claim, "")
            lines = [("FAIL", f) for f in failures]
            numbers = []
        rows.append({"claim": claim, "status": status, "text": text, "lines": lines, "numbers": numbers})
    return rows


def _key_numbers(outcome, claims: list[dict]) -> list[str]:
    numbers = [n for c in claims for n in c["numbers"]]
    if numbers:
        return numbers[:3]
    try:
        result = json.loads(Path(outcome.result_path).read_text(encoding="utf-8"))["result"]
    except (OSError, ValueError, KeyError, AttributeError):
        return []
    if not isinstance(result, dict):
        return []
    params = set(getattr(outcome, "params", {}) or {})
    return [f"{k} = {_number(v)}" for k, v in result.items()   # measured, not the set-up
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k not in params and not k.startswith(("bin", "duration"))][:3]


def _status_cell(status: str) -> str:
    return f'<span class="status {_STATUS_CLASS.get(status, "warn")}">{_esc(status)}</span>'


def _verdict(claims: list[dict]) -> str:
    counts: dict[str, int] = {}
    for c in claims:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    order = ["PASS", "FAIL", "NOT MEASURED", "UNCHECKED"]
    parts = [f"{_status_cell(s)} {counts[s]}" for s in order if counts.get(s)]
    parts += [f"{_status_cell(s)} {n}" for s, n in counts.items() if s not in order]
    return " ".join(parts) or "—"


def render(sections, out: Path, titles: dict[str, tuple[str, str]] | None = None) -> str:
    """The page for ``sections``: ``(name, outcome, error)`` per experiment, in page order
    (``outcome`` an :class:`~simsock.experiment.ExperimentOutcome`, or None and ``error`` the
    traceback). ``titles`` maps a name to (title, description). Figures link relative to ``out``."""
    titles = titles or {}
    prepared = []
    for name, outcome, error in sections:
        claims = _claims(outcome) if outcome is not None else []
        prepared.append((name, outcome, error, claims))

    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>simsock experiments</title>", f"<style>{_STYLE}</style>",
             f"<script>{_SCRIPT}</script></head><body>",
             "<h1>simsock experiments</h1>",
             ('<p class="lead">Every experiment run with its default parameters and seed 1: which of '
              "the chapter's claims it shows, whether each holds in the simulation (PASS) or not (FAIL), "
              "the numbers that decided it, and its figures. Claim ids (C5.4 …) are explained in "
              "<code>docs/claims.md</code>.</p>")]

    # 1. summary table
    parts.append('<h2 id="summary">Summary</h2><table class="summary"><thead><tr>'
                 "<th>experiment</th><th>claims</th><th>verdict</th><th>key numbers</th></tr></thead><tbody>")
    for name, outcome, error, claims in prepared:
        link = f'<a href="#{_esc(name)}">{_esc(name)}</a>'
        if error is not None:
            parts.append(f"<tr><td>{link}</td><td>—</td><td>{_status_cell('ERROR')}</td>"
                         f"<td>{_esc(error.strip().splitlines()[-1])}</td></tr>")
            continue
        ids = ", ".join(c["claim"] for c in claims)
        numbers = "<br>".join(_esc(n) for n in _key_numbers(outcome, claims))
        parts.append(f"<tr><td>{link}</td><td>{_esc(ids)}</td><td>{_verdict(claims)}</td>"
                     f'<td class="num">{numbers}</td></tr>')
    parts.append("</tbody></table>")

    # 2. contents
    parts.append('<nav><h2 id="contents">Contents</h2><ol>')
    for name, _, _, _ in prepared:
        title = titles.get(name, (name, ""))[0]
        parts.append(f'<li><a href="#{_esc(name)}">{_esc(name)}</a> — {_esc(title)}</li>')
    parts.append("</ol></nav>")

    # 3. sections
    for name, outcome, error, claims in prepared:
        title, description = titles.get(name, (name, ""))
        parts.append(f'<section id="{_esc(name)}">')
        parts.append(f"<h2>{_esc(name)}: {_esc(title)}</h2>")
        if description:
            parts.append(f"<p>{_esc(description)}</p>")
        if error is not None:
            parts.append(f"<p>{_status_cell('ERROR')} the experiment crashed:</p><pre>{_esc(error)}</pre>")
            parts.append('<p><a href="#summary">back to the summary</a></p></section>')
            continue
        parts.append('<table class="claims"><thead><tr><th>status</th><th>claim</th><th>what it says</th>'
                     "<th>measured</th></tr></thead><tbody>")
        for c in claims:
            lines = "<br>".join(f"{_esc(s + ': ') if s and s != 'PASS' else ''}{_esc(t)}" for s, t in c["lines"])
            parts.append(f"<tr><td>{_status_cell(c['status'])}</td><td>{_esc(c['claim'])}</td>"
                         f"<td>{_esc(c['text']) or '<em>(see docs/claims.md)</em>'}</td>"
                         f'<td class="num">{lines}</td></tr>')
        parts.append("</tbody></table>")
        for figure in outcome.figures:
            src = Path(os.path.relpath(figure, out)).as_posix()
            parts.append(f'<figure><img src="{_esc(src)}" alt="{_esc(name)}: {_esc(Path(figure).stem)}" '
                         f'loading="eager"><figcaption>{_esc(Path(figure).name)}</figcaption></figure>')
        for problem in getattr(outcome, "figure_errors", []) or []:
            parts.append(f'<p class="missing">figure not drawn: {_esc(problem)}</p>')
        rows = "".join(f"<tr><td><code>{_esc(k)}</code></td><td>{_esc(_show(v))}</td></tr>"
                       for k, v in outcome.params.items())
        parts.append(f"<details><summary>parameters</summary><table>{rows}</table></details>")
        parts.append('<p><a href="#summary">back to the summary</a></p></section>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_show(v) for v in value)
    return str(value)


def write(sections, out: Path) -> Path:
    """Render the page into ``out/report.html`` (titles from the experiments) and return it."""
    titles = {}
    for name, _, _ in sections:
        try:
            module = experiment.load(name)
        except experiment.ExperimentError:
            continue
        doc = (module.__doc__ or "").strip().split("\n\n")
        description = " ".join(" ".join(line.strip() for line in p.splitlines()) for p in doc[1:2])
        titles[name] = (experiment.title(module), description)
    out.mkdir(parents=True, exist_ok=True)
    page = out / "report.html"
    page.write_text(render(sections, out, titles), encoding="utf-8")
    return page
