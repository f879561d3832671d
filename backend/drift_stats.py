"""Drift statistics of one feature, computed from two KLL sketches (reference, current); never from raw data.

All four statistics come from the sketches' quantile and CDF functions:

- **KS**: the two-sample Kolmogorov-Smirnov statistic, sup |F_ref - F_cur| over the union of both sketches'
  quantiles (``GRID`` points each).
- **PSI**: population stability index over ``BINS`` equal-probability bins of the reference.
- **JS**: Jensen-Shannon distance (base 2, in [0, 1]) of the same binned distributions.
- **Wasserstein**: W1 = integral of |Q_ref(q) - Q_cur(q)| dq, divided by the reference's standard deviation
  (both from ``GRID`` quantiles).

Thresholds depend on the sample sizes n (current) and m (reference) and on the number of features tested
at once (Bonferroni: each feature is tested at ``alpha / features``):

- KS: the asymptotic two-sample critical value c(a) * sqrt((n + m) / (n m)), c(a) = sqrt(-ln(a / 2) / 2),
  plus both sketches' rank-error bounds (KLL is approximate once it compacts; exact below that). This is the
  decision statistic: a feature drifts in a window when KS is above it.
- PSI: under no drift PSI ~ (1/n + 1/m) chi2(B - 1); threshold = that scale times the chi-square quantile.
- JS: from the PSI threshold (for small differences JSD ~ PSI / 8 nats): sqrt(PSI_thr / (8 ln 2)).
- Wasserstein: the KS critical value in reference-sd units (a bridge-based bound for light-tailed data).
The last three are reported with their own flags; they are informational, the decision is the KS test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from datasketches import kll_floats_sketch
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2

BINS = 10
GRID = 200
PSI_FLOOR = 1e-4  # empty bins: PSI's log needs a floor


@dataclass(frozen=True)
class FeatureStats:
    psi: float
    js: float
    ks: float
    wasserstein: float
    psi_threshold: float
    js_threshold: float
    ks_threshold: float
    wasserstein_threshold: float
    n_reference: int
    n_current: int

    @property
    def drift(self) -> bool:
        return self.ks > self.ks_threshold


def merged(sketches: list[kll_floats_sketch], k: int = 200) -> kll_floats_sketch:
    total = kll_floats_sketch(k)
    for sketch in sketches:
        total.merge(sketch)
    return total


def rank_error(sketch: kll_floats_sketch) -> float:
    return float(sketch.normalized_rank_error(False)) if sketch.is_estimation_mode() else 0.0


def ks_critical(alpha: float, n: int, m: int) -> float:
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def psi_threshold(alpha: float, n: int, m: int, bins: int = BINS) -> float:
    return (1 / n + 1 / m) * float(chi2.ppf(1 - alpha, bins - 1))


def compare(reference: kll_floats_sketch, current: kll_floats_sketch, *, alpha: float) -> FeatureStats:
    """The four statistics of ``current`` against ``reference`` and their thresholds at level ``alpha``
    (already corrected for the number of features)."""
    n, m = int(current.n), int(reference.n)
    p_ref, p_cur = _binned(reference, current)
    psi = float(np.sum((p_cur - p_ref) * np.log(p_cur / p_ref)))
    js = float(jensenshannon(p_ref, p_cur, base=2))
    ks = _ks(reference, current)
    ks_crit = ks_critical(alpha, n, m)
    psi_thr = psi_threshold(alpha, n, m)
    return FeatureStats(psi=psi, js=js, ks=ks, wasserstein=_wasserstein(reference, current), psi_threshold=psi_thr,
                        js_threshold=math.sqrt(psi_thr / (8 * math.log(2))),
                        ks_threshold=ks_crit + rank_error(reference) + rank_error(current),
                        wasserstein_threshold=ks_crit, n_reference=m, n_current=n)


def _binned(reference: kll_floats_sketch, current: kll_floats_sketch) -> tuple[np.ndarray, np.ndarray]:
    edges = np.unique(np.asarray(reference.get_quantiles(list(np.linspace(0, 1, BINS + 1)[1:-1]))))
    p_ref = np.diff(np.concatenate(([0.0], np.asarray(reference.get_cdf(list(edges)))), axis=None))
    p_cur = np.diff(np.concatenate(([0.0], np.asarray(current.get_cdf(list(edges)))), axis=None))
    return np.maximum(p_ref, PSI_FLOOR), np.maximum(p_cur, PSI_FLOOR)


def _ks(reference: kll_floats_sketch, current: kll_floats_sketch) -> float:
    ranks = list(np.linspace(0, 1, GRID + 1))
    points = np.unique(np.concatenate([reference.get_quantiles(ranks), current.get_quantiles(ranks)]))
    grid = list(points)
    f_ref = np.asarray(reference.get_cdf(grid))[:-1]
    f_cur = np.asarray(current.get_cdf(grid))[:-1]
    return float(np.max(np.abs(f_ref - f_cur)))


def _wasserstein(reference: kll_floats_sketch, current: kll_floats_sketch) -> float:
    ranks = list((np.arange(GRID) + 0.5) / GRID)
    q_ref = np.asarray(reference.get_quantiles(ranks))
    q_cur = np.asarray(current.get_quantiles(ranks))
    sd = float(np.std(q_ref))
    distance = float(np.mean(np.abs(q_ref - q_cur)))
    if sd == 0.0:
        return 0.0 if distance == 0.0 else math.inf
    return distance / sd
