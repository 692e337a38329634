"""Gradient-boosted trees or a logistic regression read from JSON and evaluated with numpy: the
violence classifier's model (``models/violence.json``, written by scripts/train_violence.py).
No pickle and no scikit-learn at run time."""
from __future__ import annotations

from typing import Mapping

import numpy as np


class TreeEnsemble:
    """A binary gradient-boosted tree ensemble (scikit-learn's HistGradientBoostingClassifier,
    dumped to JSON by the training script) or a logistic regression (binary, or multinomial:
    ``raw`` then gives one column per class), evaluated with numpy."""

    def __init__(self, spec: Mapping):
        self.kind = spec["kind"]
        self.feature_names = tuple(spec["feature_names"])
        if self.kind == "trees":
            self.baseline = float(spec["baseline"])
            self.trees = [{k: np.asarray(v) for k, v in t.items()} for t in spec["trees"]]
            self._pack()
        elif self.kind == "logistic":
            self.mean = np.asarray(spec["mean"], np.float64)
            self.std = np.asarray(spec["std"], np.float64)
            self.coef = np.asarray(spec["coef"], np.float64)
            # binary: coef (features,), one intercept; multinomial: (features, classes), one each
            self.intercept = np.asarray(spec["intercept"], np.float64)
        else:
            raise ValueError(f"unknown model kind {self.kind!r}")

    def _pack(self) -> None:
        """All trees as padded (trees, nodes) arrays: one pass per depth level for all of them."""
        n = max((len(t["value"]) for t in self.trees), default=1)

        def pad(key, dtype, fill):
            a = np.full((len(self.trees), n), fill, dtype)
            for i, t in enumerate(self.trees):
                a[i, :len(t[key])] = t[key]
            return a

        self._feature = pad("feature", np.int64, 0)
        self._threshold = pad("threshold", np.float64, 0.0)
        self._left, self._right = pad("left", np.int64, 0), pad("right", np.int64, 0)
        self._leaf = pad("is_leaf", bool, True)
        self._missing_left = pad("missing_left", bool, False)
        self._value = pad("value", np.float64, 0.0)

    def raw(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, np.float64))
        if self.kind == "logistic":
            return ((x - self.mean) / self.std) @ self.coef + self.intercept
        if not self.trees:
            return np.full(len(x), self.baseline)
        return self.baseline + self.tree_values(x).sum(axis=1)

    def tree_values(self, x: np.ndarray) -> np.ndarray:
        """(samples, trees): each tree's leaf value for each sample."""
        x = np.atleast_2d(np.asarray(x, np.float64))
        tree = np.arange(len(self.trees))[None, :]
        rows = np.arange(len(x))[:, None]
        node = np.zeros((len(x), len(self.trees)), np.int64)
        for _ in range(64):
            leaf = self._leaf[tree, node]
            if leaf.all():
                break
            v = x[rows, self._feature[tree, node]]
            go_left = np.where(np.isnan(v), self._missing_left[tree, node],
                               v <= self._threshold[tree, node])
            nxt = np.where(go_left, self._left[tree, node], self._right[tree, node])
            node = np.where(leaf, node, nxt)
        return self._value[tree, node]

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.raw(x)))
