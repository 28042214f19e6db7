"""Trains the learned classifier's head on the TRAIN split only and writes it into the package
(`src/sluicegate/data/classify_head.npz`). Deterministic: `python tests/data/classify/train_head.py`.

Features: the model host's default embedding (wordllama l2_supercat, 256 dimensions) of each prompt's
instruction, and the heuristic's answer. Multinomial logistic regression with L2, by gradient descent; the
class weights favour the higher tiers a little, since serving a prompt below its tier costs quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sluicegate.classify.classification import Prompt
from sluicegate.classify.config import DEFAULT_TIERS
from sluicegate.classify.evaluate import load
from sluicegate.classify.heuristic import HeuristicClassifier
from sluicegate.classify.learned import LocalEncoder, heuristic_features, instruction_of

HERE = Path(__file__).parent
OUT = HERE.parent.parent.parent / "src" / "sluicegate" / "data" / "classify_head.npz"
CLASS_WEIGHTS = np.array([1.0, 1.3, 1.6])


def main() -> None:
    rows = load(HERE / "prompts.jsonl", "train")
    encoder = LocalEncoder()
    heuristic = HeuristicClassifier()
    prompts = [Prompt(r.messages) for r in rows]
    texts = [instruction_of(p) for p in prompts]
    vectors = encoder.embed(texts)
    extra = np.stack([heuristic_features(heuristic.classify_now(p), t) for p, t in zip(prompts, texts, strict=True)])
    x = np.hstack([vectors, extra]).astype(np.float64)
    y = np.array([DEFAULT_TIERS.index(r.tier) for r in rows])
    onehot = np.eye(len(DEFAULT_TIERS))[y]
    sample = CLASS_WEIGHTS[y][:, None]
    w = np.zeros((x.shape[1], len(DEFAULT_TIERS)))
    for _ in range(3000):
        z = x @ w
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        w -= 0.5 * (x.T @ ((p - onehot) * sample) / len(x) + 1e-3 * w)
    np.savez_compressed(OUT, weights=w.astype(np.float32))
    print(f"trained on {len(rows)} prompts -> {OUT}")


if __name__ == "__main__":
    main()
