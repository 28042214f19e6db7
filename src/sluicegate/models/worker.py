"""A model host child: pins itself off the event loop's core, lowers its priority, loads the model, then
answers embedding requests on stdin/stdout until stdin closes. Run by the host, never by hand:

    python -m sluicegate.models.worker --model l2_supercat --dimensions 256 [--model-dir D] [--cpus 1] [--nice 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Any, BinaryIO

from sluicegate.models.protocol import LENGTH_BYTES, reply_frame, request_length


def lower_priority(cpus: list[int], nice: int) -> None:
    """Keeps this process off the event loop's core and behind it in the run queue, where the OS allows."""
    if cpus and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:
            pass  # a core this machine does not let us use: the scheduler places us
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_BATCH"):
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # CPU-bound: never preempts on wake-up
        except OSError:
            pass
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass


class StaticEmbedder:
    """A static (token table + mean pooling) sentence-embedding model, read from local files only."""

    def __init__(self, model: str, dimensions: int, model_dir: str | None) -> None:
        from tokenizers import Tokenizer
        from wordllama.inference import WordLlamaInference  # the extra `sluicegate[local-models]`

        directory = Path(model_dir) if model_dir else None
        weights = _weights_file(model, dimensions, directory)
        tokenizer_dir = directory if directory else Path(_package_dir()) / "tokenizers"
        tokenizer = Tokenizer.from_file(str(tokenizer_dir / f"{model}_tokenizer_config.json"))
        from safetensors import safe_open

        with safe_open(str(weights), framework="np", device="cpu") as handle:
            table = handle.get_tensor("embedding.weight")[:, :dimensions]
        self._model = WordLlamaInference(table, tokenizer)
        self.dimensions = dimensions

    def embed(self, texts: list[str]) -> bytes:
        vectors = self._model.embed(texts, norm=True, batch_size=len(texts) or 1)
        return bytes(vectors.astype("<f4", copy=False).tobytes())


def _package_dir() -> str:
    import wordllama

    return str(Path(wordllama.__file__).parent)


def _weights_file(model: str, dimensions: int, directory: Path | None) -> Path:
    """`<model>_<N>.safetensors` with the smallest N >= dimensions (a larger table is truncated)."""
    folder = directory if directory else Path(_package_dir()) / "weights"
    sizes = []
    for path in folder.glob(f"{model}_*.safetensors"):
        size = path.stem[len(model) + 1 :]
        if size.isdigit() and int(size) >= dimensions:
            sizes.append(int(size))
    if not sizes:
        raise FileNotFoundError(f"no {model}_<N>.safetensors with N >= {dimensions} in {folder}")
    return folder / f"{model}_{min(sizes)}.safetensors"


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve(model: Any, requests: BinaryIO, replies: BinaryIO) -> None:
    import orjson

    while True:
        prefix = _read_exactly(requests, LENGTH_BYTES)
        if prefix is None:
            return  # the host closed our stdin: it stopped, or it is gone
        payload = _read_exactly(requests, request_length(prefix))
        if payload is None:
            return
        message = orjson.loads(payload)
        try:
            texts = message["texts"]
            body = model.embed(texts)
            frame = reply_frame({"id": message["id"], "rows": len(texts), "dims": model.dimensions}, body)
        except Exception as exc:  # one bad batch fails its callers, not the child
            frame = reply_frame({"id": message.get("id"), "error": f"{type(exc).__name__}: {exc}"[:500]})
        replies.write(frame)
        replies.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sluicegate.models.worker")
    parser.add_argument("--model", required=True)
    parser.add_argument("--dimensions", type=int, required=True)
    parser.add_argument("--model-dir")
    parser.add_argument("--cpus", default="")
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args(argv)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library's stray print goes to stderr, never into the frames
    requests = sys.stdin.buffer
    lower_priority([int(c) for c in args.cpus.split(",") if c], args.nice)
    try:
        model = StaticEmbedder(args.model, args.dimensions, args.model_dir)
    except Exception as exc:
        replies.write(reply_frame({"fatal": f"{type(exc).__name__}: {exc}"[:500]}))
        replies.flush()
        traceback.print_exc()
        return 1
    replies.write(reply_frame({"ready": True, "dims": model.dimensions, "model": args.model}))
    replies.flush()
    serve(model, requests, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
