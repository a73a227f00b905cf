"""Metrics of `lavin eval`, on predictions and exact ground truth (arrays in [0, 1]).

    depth       AbsRel and delta1 (< 1.25) after least-squares scale and shift alignment of the
                prediction (gray = inverse depth) to the true inverse depth, as in the paper
    normals     mean angular error in degrees over pixels that hit a surface
    foreground  IoU of (prediction > 0.5) with the object mask
    edges       F1 of (prediction > 0.5) against the edge map, 1-pixel tolerance
    restoration PSNR (dB) against the clean picture
"""

from __future__ import annotations

import numpy as np

LOWER_IS_BETTER = {"abs_rel", "angular_error_deg"}


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    mse = float(np.mean((pred - target) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(1.0 / mse)


def depth_metrics(pred: np.ndarray, depth: np.ndarray) -> dict[str, float]:
    """pred (H, W) in [0, 1] encodes inverse depth up to scale and shift."""
    inv = 1.0 / depth
    a = np.stack([pred.ravel(), np.ones(pred.size)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(a, inv.ravel(), rcond=None)
    est = 1.0 / np.clip(scale * pred + shift, 1.0 / 100, None)
    ratio = np.maximum(est / depth, depth / est)
    return {"abs_rel": float(np.mean(np.abs(est - depth) / depth)), "delta1": float(np.mean(ratio < 1.25))}


def normal_error(pred_rgb: np.ndarray, normal: np.ndarray, valid: np.ndarray) -> float:
    n = pred_rgb * 2 - 1
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
    cos = np.clip((n * normal).sum(-1), -1, 1)
    return float(np.degrees(np.arccos(cos[valid])).mean())


def iou(pred: np.ndarray, mask: np.ndarray) -> float:
    p, m = pred > 0.5, mask > 0.5
    union = (p | m).sum()
    return 1.0 if union == 0 else float((p & m).sum() / union)


def _dilate(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, 1)
    return np.max([p[i:i + x.shape[0], j:j + x.shape[1]] for i in range(3) for j in range(3)], axis=0)


def edge_f1(pred: np.ndarray, edges: np.ndarray) -> float:
    p, g = pred > 0.5, edges > 0.5
    if not p.any() or not g.any():
        return float(p.any() == g.any())
    precision = (p & _dilate(g)).sum() / p.sum()
    recall = (g & _dilate(p)).sum() / g.sum()
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def better(metrics: dict[str, float], baseline: dict[str, float]) -> bool:
    return all((metrics[k] < baseline[k]) if k in LOWER_IS_BETTER else (metrics[k] > baseline[k]) for k in metrics)
