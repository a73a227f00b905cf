"""The standard protocols of `lavin eval --truth`, one per kind of target. Predictions are float
arrays (H, W, 3) in [0, 1] at the truth's size; truths as the readers in dataset.py give them.

    depth        AbsRel, SqRel, RMSE, log RMSE, delta1-3 over valid truth pixels (finite, inside
                 [min_depth, max_depth], e.g. KITTI's 1e-3..80 m), after an alignment: lsq-disparity
                 (least-squares scale and shift of the prediction, an inverse depth, to 1 / truth:
                 the paper's and MiDaS'), lsq-depth (to the depth itself), median (median scaling of
                 the prediction as depth, as monodepth) or none; predictions clipped to the cap
    normals      mean and median angle (degrees) and % of pixels within 11.25, 22.5 and 30 degrees,
                 over pixels with a truth normal
    mask         IoU at 0.5 (torchmetrics), mean IoU over the thresholds 0.1..0.9, and boundary F
                 (DAVIS: boundaries matched within 0.008 of the diagonal)
    edges        ODS and OIS F-measure over 99 thresholds, thinned predictions matched one to one
                 within 0.0075 of the diagonal (the BSDS protocol, pyEdgeEval's CSA matching), and
                 the F1 at 0.5 with a one-pixel tolerance that `lavin eval` reports on the generator
    restoration  PSNR and SSIM (torchmetrics; Gaussian window 11, sigma 1.5, averaged over the windows
                 inside the image as Wang et al.'s ssim.m and BasicSR do: torchmetrics' own mean
                 also takes the reflect-padded border) on RGB or on the Y of YCbCr (BT.601), with an
                 optional border crop (super-resolution's convention)
    l1           mean absolute and mean squared error
    with masks   (--mask, inpainting) restoration and l1 also score the pixels filled alone:
                 psnr_hole_db and l1_hole over the mask's pixels (the rest is the query's own)
Library metrics where one exists (torchmetrics, pyEdgeEval), ours where none does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAMILIES = ("depth", "normals", "mask", "edges", "restoration", "l1")
ALIGNMENTS = ("lsq-disparity", "lsq-depth", "median", "none")
LOWER_IS_BETTER = {"abs_rel", "sq_rel", "rmse", "rmse_log", "angle_mean", "angle_median", "l1", "l2"}
EDGE_THRESHOLDS = 99


@dataclass(frozen=True)
class Protocol:
    """How a family is scored: the depth alignment and caps, the restoration channel and crop."""

    family: str
    align: str = "lsq-disparity"
    min_depth: float = 1e-3
    max_depth: float = 1e4
    channel: str = "rgb"  # restoration: rgb or y
    crop: int = 0  # restoration: border pixels left out

    @property
    def primary(self) -> str:
        """The metric that orders queries from worst to best (the report's grids)."""
        return {"depth": "abs_rel", "normals": "angle_mean", "mask": "iou", "edges": "f1_ois",
                "restoration": "psnr_db", "l1": "l1"}[self.family]


NEEDS = {"mask": ["torchmetrics"], "edges": ["pyEdgeEval", "cv2", "scipy"], "restoration": ["torchmetrics"]}


def missing(family: str, report: bool) -> str | None:
    """The first module of the `eval` extra that scoring `family` (and the report) needs and this
    Python lacks, or None."""
    import importlib.util

    for name in NEEDS.get(family, []) + (["matplotlib"] if report else []):
        if importlib.util.find_spec(name) is None:
            return name
    return None


def gray(pred: np.ndarray) -> np.ndarray:
    return pred.mean(-1) if pred.ndim == 3 else pred


# ------------------------------------------------------------------ depth


def align_depth(pred: np.ndarray, depth: np.ndarray, valid: np.ndarray, p: Protocol) -> np.ndarray:
    """The prediction as depth, aligned to the truth on the valid pixels."""
    x = pred[valid].astype(np.float64)
    if p.align == "lsq-disparity":
        (scale, shift), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), 1.0 / depth[valid], rcond=None)
        est = 1.0 / np.clip(scale * pred + shift, 1.0 / p.max_depth, None)
    elif p.align == "lsq-depth":
        (scale, shift), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), depth[valid], rcond=None)
        est = scale * pred + shift
    elif p.align == "median":
        as_depth = 1.0 / np.maximum(pred, 1e-6)
        est = as_depth * np.median(depth[valid]) / np.median(as_depth[valid])
    else:
        est = pred.astype(np.float64)
    return np.clip(est, p.min_depth, p.max_depth)


def depth_metrics(pred: np.ndarray, depth: np.ndarray, p: Protocol) -> dict[str, float]:
    pred, depth = gray(pred), np.asarray(depth, np.float64)
    valid = np.isfinite(depth) & (depth >= p.min_depth) & (depth <= p.max_depth)
    if valid.sum() < 2:
        raise ValueError("fewer than two valid truth pixels (finite, inside the depth caps)")
    est, gt = align_depth(pred, depth, valid, p)[valid], depth[valid]
    ratio = np.maximum(est / gt, gt / est)
    return {"abs_rel": float(np.mean(np.abs(est - gt) / gt)), "sq_rel": float(np.mean((est - gt) ** 2 / gt)),
            "rmse": float(np.sqrt(np.mean((est - gt) ** 2))),
            "rmse_log": float(np.sqrt(np.mean((np.log(est) - np.log(gt)) ** 2))),
            **{f"delta{k}": float(np.mean(ratio < 1.25 ** k)) for k in (1, 2, 3)}}


# ------------------------------------------------------------------ normals


def normal_metrics(pred: np.ndarray, normals: np.ndarray) -> dict[str, float]:
    """`normals` (H, W, 3) unit vectors, zero where there is none."""
    valid = np.linalg.norm(normals, axis=-1) > 0.5
    if not valid.any():
        raise ValueError("no pixel has a truth normal")
    n = pred * 2 - 1
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
    t = normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-6)
    angle = np.degrees(np.arccos(np.clip((n * t).sum(-1), -1, 1)))[valid]
    return {"angle_mean": float(angle.mean()), "angle_median": float(np.median(angle)),
            **{f"within_{limit:g}": float(np.mean(angle < limit)) for limit in (11.25, 22.5, 30)}}


# ------------------------------------------------------------------ masks


def _boundary(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask, 1, mode="edge")
    return mask & ~(p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:])


def _dilate(x: np.ndarray, radius: int) -> np.ndarray:
    out = x.copy()
    for _ in range(radius):
        p = np.pad(out, 1)
        out = np.max([p[i:i + x.shape[0], j:j + x.shape[1]] for i in range(3) for j in range(3)], axis=0)
    return out


def boundary_f(pred: np.ndarray, truth: np.ndarray, tolerance: float = 0.008) -> float:
    """DAVIS boundary F: mask boundaries matched within `tolerance` of the image diagonal."""
    bp, bt = _boundary(pred), _boundary(truth)
    radius = max(1, int(np.ceil(tolerance * np.hypot(*truth.shape))))
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0
    precision = (bp & _dilate(bt, radius)).sum() / bp.sum()
    recall = (bt & _dilate(bp, radius)).sum() / bt.sum()
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def mask_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    import torch
    from torchmetrics.functional.classification import binary_jaccard_index

    g, t = gray(pred), truth > 0.5
    target = torch.from_numpy(t.astype(np.int64))

    def iou(threshold: float) -> float:
        if not t.any() and not (g > threshold).any():
            return 1.0
        return float(binary_jaccard_index(torch.from_numpy(g), target, threshold=threshold))

    return {"iou": iou(0.5), "miou_sweep": float(np.mean([iou(th) for th in np.arange(0.1, 0.91, 0.1)])),
            "boundary_f": boundary_f(g > 0.5, t)}


# ------------------------------------------------------------------ edges


def edge_counts(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """BSDS counts per threshold, (4, T): matched truth pixels, truth pixels, matched predicted
    pixels, predicted pixels (pyEdgeEval, thinned, max_dist 0.0075)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # its import prints a note about .mat files on stdout
        from pyEdgeEval.common.binary_label.evaluate_boundaries import evaluate_boundaries_threshold

    thresholds = np.linspace(1.0 / (EDGE_THRESHOLDS + 1), 1.0 - 1.0 / (EDGE_THRESHOLDS + 1), EDGE_THRESHOLDS)
    return np.array(evaluate_boundaries_threshold(thresholds, gray(pred).astype(np.float64), truth > 0.5,
                                                  max_dist=0.0075, apply_thinning=True), dtype=np.float64)


def f_of(counts: np.ndarray) -> np.ndarray:
    count_r, sum_r, count_p, sum_p = counts
    rec, prec = count_r / (sum_r + (sum_r == 0)), count_p / (sum_p + (sum_p == 0))
    return 2 * prec * rec / (prec + rec + ((prec + rec) == 0))


def edge_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Per image: OIS (its best threshold) and the F1 at 0.5 with a one-pixel tolerance; the
    dataset's ODS comes from the summed counts (`dataset_edges`)."""
    from lavin_cli.evaluation.metrics import edge_f1

    counts = edge_counts(pred, truth)
    return {"f1_ois": float(f_of(counts).max()), "f1_05": edge_f1(gray(pred), truth), "_counts": counts.tolist()}


def dataset_edges(counts: list) -> dict[str, float]:
    """ODS: the best F over the dataset's summed counts at one threshold for every image."""
    total = np.sum(np.asarray(counts, dtype=np.float64), axis=0)
    return {"f1_ods": float(f_of(total).max())}


# ------------------------------------------------------------------ restorations


def luma(x: np.ndarray) -> np.ndarray:
    """Y of YCbCr (BT.601, [16, 235] scaled back to [0, 1] as MATLAB's rgb2ycbcr), super-resolution's channel."""
    return (16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def restoration_metrics(pred: np.ndarray, truth: np.ndarray, p: Protocol) -> dict[str, float]:
    import torch
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    a, b = (luma(pred)[..., None], luma(truth)[..., None]) if p.channel == "y" else (pred, truth)
    if p.crop:
        a, b = a[p.crop:-p.crop, p.crop:-p.crop], b[p.crop:-p.crop, p.crop:-p.crop]
    if min(a.shape[:2]) < 11:
        raise ValueError(f"{a.shape[1]}x{a.shape[0]} pixels (after --crop) is smaller than SSIM's 11x11 window")
    ta = torch.from_numpy(np.ascontiguousarray(a, np.float64)).permute(2, 0, 1)[None]
    tb = torch.from_numpy(np.ascontiguousarray(b, np.float64)).permute(2, 0, 1)[None]
    mse = float(torch.mean((ta - tb) ** 2))
    psnr = 99.0 if mse == 0 else float(peak_signal_noise_ratio(ta, tb, data_range=1.0))
    _, full = structural_similarity_index_measure(ta, tb, data_range=1.0, gaussian_kernel=True, sigma=1.5,
                                                  kernel_size=11, return_full_image=True)
    ssim = float(full[..., 5:-5, 5:-5].mean())  # the windows inside the image (Wang's ssim.m, BasicSR)
    return {"psnr_db": psnr, "ssim": ssim}


def l1_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    d = pred - (np.repeat(truth[..., None], 3, -1) if truth.ndim == 2 else truth)
    return {"l1": float(np.abs(d).mean()), "l2": float((d ** 2).mean())}


def hole_metrics(pred: np.ndarray, truth: np.ndarray, fill: np.ndarray, p: Protocol) -> dict[str, float]:
    """PSNR and mean absolute error over the pixels a mask filled (`fill`, (H, W) bool), on the
    channel the protocol scores; none where the mask is empty."""
    if not fill.any():
        return {}
    truth = np.repeat(truth[..., None], 3, -1) if truth.ndim == 2 else truth
    a, b = (luma(pred), luma(truth)) if p.channel == "y" else (pred, truth)
    d = (a - b)[fill]  # (pixels,) or (pixels, 3)
    mse = float(np.mean(d ** 2))
    return {"psnr_hole_db": 99.0 if mse == 0 else float(10 * np.log10(1.0 / mse)), "l1_hole": float(np.abs(d).mean())}


def score(pred: np.ndarray, truth: np.ndarray, p: Protocol, fill: np.ndarray | None = None) -> dict[str, float]:
    """The protocol's metrics; with `fill` (the mask a run filled), those of the filled pixels too."""
    if fill is not None and p.family in ("restoration", "l1"):
        return {**score(pred, truth, p), **hole_metrics(pred, truth, fill, p)}
    if p.family == "depth":
        return depth_metrics(pred, truth, p)
    if p.family == "normals":
        return normal_metrics(pred, truth)
    if p.family == "mask":
        return mask_metrics(pred, truth)
    if p.family == "edges":
        return edge_metrics(pred, truth)
    if p.family == "restoration":
        return restoration_metrics(pred, truth, p)
    return l1_metrics(pred, truth)
