"""The report folder of `lavin eval --truth ... --report DIR`: what a person looks at.

    index.html            the summary table, the plots, the grids, the unmatched files
    hist_<metric>.png     a histogram of each metric over the queries (matplotlib)
    worst.png, best.png   the queries the primary metric ranks worst and best: query, truth,
                          prediction side by side, the metric under each row
    summary.json          the numbers of the page
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from lavin_cli.evaluation import protocols
from lavin_cli.evaluation.dataset import Scored, read_prediction, read_truth
from lavin_cli.io import images as image_io
from lavin_cli.io.files import atomic_path, write_atomic

ROWS = 4  # queries in each of the worst and best grids
CELL = 128  # pixels high of each picture in them


def _histograms(scored: Scored, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    ok = [r["metrics"] for r in scored.rows if "metrics" in r]
    for metric in (ok[0] if ok else {}):
        values = [m[metric] for m in ok]
        fig, ax = plt.subplots(figsize=(4.2, 2.8), dpi=100)
        ax.hist(values, bins=min(30, max(5, len(values) // 2)), color="#2f6fde", edgecolor="white")
        ax.axvline(float(np.mean(values)), color="#b3261e", linewidth=1.5, label=f"mean {np.mean(values):.4g}")
        ax.set_xlabel(metric + (" (lower is better)" if metric in protocols.LOWER_IS_BETTER else ""))
        ax.set_ylabel("queries")
        ax.legend(frameon=False, fontsize=8)
        fig.tight_layout()
        name = f"hist_{metric}.png"
        with atomic_path(folder / name, suffix=".png") as tmp:
            fig.savefig(tmp)
        plt.close(fig)
        names.append(name)
    return names


def _picture(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (gray or RGB) -> RGB uint8; a gray map of other values is min-max scaled."""
    v = np.nan_to_num(values.astype(np.float64), nan=0.0)
    if v.ndim == 2:
        low, high = float(v.min()), float(v.max())
        v = (v - low) / (high - low) if (low < 0 or high > 1) and high > low else v
        v = np.repeat(v[..., None], 3, -1)
    return image_io.to_uint8(v)


def _truth_picture(row: dict, family: str) -> np.ndarray:
    truth = read_truth(Path(row["truth"]), family)
    if family == "depth":  # inverse depth, min-max over the measured pixels: near = white, none = black
        inv = np.where(np.isfinite(truth), 1.0 / np.maximum(truth, 1e-6), np.nan)
        low, high = np.nanmin(inv), np.nanmax(inv)
        return _picture(np.nan_to_num((inv - low) / max(high - low, 1e-12), nan=0.0))
    if family == "normals":
        return _picture((truth + 1) / 2 * (np.linalg.norm(truth, axis=-1, keepdims=True) > 0.5))
    return _picture(truth)


def _caption(cells: np.ndarray, text: str) -> np.ndarray:
    """A row of the grid with `text` in a band under it."""
    from PIL import Image, ImageDraw

    band = Image.new("RGB", (cells.shape[1], 18), "white")
    ImageDraw.Draw(band).text((4, 3), text, fill=(29, 36, 48))
    return np.concatenate([cells, np.asarray(band)], axis=0)


def _grid(rows: list[dict], family: str, primary: str, path: Path) -> None:
    """query | truth | prediction per row, captioned with the query's name and primary metric."""
    bands = []
    for row in rows:
        truth = _truth_picture(row, family)
        query = image_io.read_image(row["query"])
        pred = _picture(read_prediction(Path(row["prediction"]), truth.shape[:2]))
        cells = image_io.grid([[query, truth, pred]], cell=CELL)
        bands.append(_caption(cells, f"{row.get('key') or Path(row['query']).name}: {primary} "
                                     f"{row['metrics'][primary]:.4g}"))
    width = max(b.shape[1] for b in bands)
    bands = [np.pad(b, ((0, 4), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in bands]
    image_io.write_image(path, np.concatenate(bands)[:-4], overwrite=True)


def worst_first(scored: Scored, metric: str) -> list[dict]:
    """The scored rows from the worst to the best by `metric`."""
    return sorted((r for r in scored.rows if "metrics" in r), key=lambda r: r["metrics"][metric],
                  reverse=metric in protocols.LOWER_IS_BETTER)


def write(scored: Scored, folder: Path, protocol: protocols.Protocol, header: dict) -> Path:
    """Write the report of one evaluation (`header`: its record's first line); the path of its index.html."""
    folder.mkdir(parents=True, exist_ok=True)
    hists = _histograms(scored, folder)
    ranked = worst_first(scored, protocol.primary)
    grids = []
    if ranked:
        grids = [("worst", ranked[:ROWS]), ("best", list(reversed(ranked))[:ROWS])]
        for name, rows in grids:
            _grid(rows, scored.family, protocol.primary, folder / f"{name}.png")
    summary = {**header, "summary": scored.summary,
               "failed": [{"query": r["query"], "error": r["error"]} for r in scored.rows if "error" in r]}
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2).encode(), overwrite=True)
    write_atomic(folder / "index.html", _page(summary, hists, grids, protocol.primary).encode(), overwrite=True)
    return folder / "index.html"


STYLE = ("body{font:15px system-ui,sans-serif;margin:2rem;color:#1d2430;max-width:1100px}td{padding:.1rem .8rem}"
         "td.n{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}figure{display:inline-block;"
         "margin:0 1rem 1rem 0;vertical-align:top}figure img{width:330px}figcaption{font-size:13px;color:#4b5563}"
         ".grids figure{max-width:410px}.grids figure img{width:auto}h2{margin-top:1.6rem}p.meta{color:#4b5563}")


def _page(summary: dict, hists: list[str], grids: list, primary: str) -> str:
    e = html.escape
    options = summary.get("options") or {}
    said = ", ".join(f"{k} {options[k]}" for k in ("steps", "cfg", "seed", "pairs", "size") if options.get(k) is not None)
    rows = "".join(f"<tr><td>{e(k)}</td><td class=n>{v:.4f}</td><td>{'lower is better' if k in protocols.LOWER_IS_BETTER else ''}"
                   f"</td></tr>" for k, v in summary["summary"].items() if isinstance(v, float))
    parts = [f"<!doctype html><meta charset=utf-8><title>lavin eval: {e(str(summary.get('model')))}</title>",
             f"<style>{STYLE}</style>", f"<h1>{e(str(summary.get('model')))} on {e(str(summary.get('truth')))}</h1>",
             f"<p class=meta>{e(str(summary.get('metric')))}, {summary['summary'].get('scored', 0)} of "
             f"{summary['summary'].get('queries', 0)} queries scored; context {e(str(summary.get('context')))}"
             f"{'; ' + e(said) if said else ''}</p>", f"<table>{rows}</table>", "<div class=grids>"]
    for name, ranked in grids:
        values = ", ".join(f"{r['metrics'][primary]:.4g}" for r in ranked)
        parts.append(f"<figure><figcaption>The {name} {len(ranked)} by {e(primary)} ({e(values)}): query, truth, "
                     f"prediction</figcaption><img src='{name}.png' alt='the {name} queries'></figure>")
    parts += ["</div><h2>Distributions over the queries</h2>"]
    parts += [f"<figure><img src='{e(h)}' alt='{e(h)}'></figure>" for h in hists]
    for side, names in (summary.get("unmatched") or {}).items():
        if names:
            parts.append(f"<h2>Unmatched {e(side)}</h2><p>{e(', '.join(map(str, names[:50])))}"
                         f"{' ...' if len(names) > 50 else ''}</p>")
    if summary["failed"]:
        parts.append("<h2>Not scored</h2><ul>" + "".join(f"<li>{e(f['query'])}: {e(f['error'])}</li>"
                                                         for f in summary["failed"]) + "</ul>")
    return "\n".join(parts)
