"""Gradient-boosted trees or a logistic regression read from JSON and evaluated with numpy: the
violence classifier's model (``models/violence.json``, written by scripts/train_violence.py).
No pickle and no scikit-learn at run time."""
from __future__ import annotations

from typing import Mapping

import numpy as np


class TreeEnsemble:
    """A binary gradient-boosted tree ensemble (scikit-learn's HistGradientBoostingClassifier,
    dumped to JSON by the training script) or a logistic regression, evaluated with numpy."""

    def __init__(self, spec: Mapping):
        self.kind = spec["kind"]
        self.feature_names = tuple(spec["feature_names"])
        if self.kind == "trees":
            self.baseline = float(spec["baseline"])
            self.trees = [{k: np.asarray(v) for k, v in t.items()} for t in spec["trees"]]
        elif self.kind == "logistic":
            self.mean = np.asarray(spec["mean"], np.float64)
            self.std = np.asarray(spec["std"], np.float64)
            self.coef = np.asarray(spec["coef"], np.float64)
            self.intercept = float(spec["intercept"])
        else:
            raise ValueError(f"unknown model kind {self.kind!r}")

    def raw(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, np.float64))
        if self.kind == "logistic":
            return ((x - self.mean) / self.std) @ self.coef + self.intercept
        out = np.full(len(x), self.baseline)
        for t in self.trees:
            node = np.zeros(len(x), np.int64)
            for _ in range(64):
                leaf = t["is_leaf"][node].astype(bool)
                if leaf.all():
                    break
                v = x[np.arange(len(x)), t["feature"][node]]
                go_left = np.where(np.isnan(v), t["missing_left"][node].astype(bool),
                                   v <= t["threshold"][node])
                nxt = np.where(go_left, t["left"][node], t["right"][node])
                node = np.where(leaf, node, nxt)
            out += t["value"][node]
        return out

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.raw(x)))
