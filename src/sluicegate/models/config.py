"""The `model_host` section: which backend serves embeddings, and how the host's child processes run."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalEmbeddings(_Strict):
    """A static-embedding model run in the host's child processes (extra `sluicegate[local-models]`).

    `model` names the weights: `<model>_<N>.safetensors` and `<model>_tokenizer_config.json`, read from
    `model_dir`, by default the files the `wordllama` wheel ships (`l2_supercat`, 256 dimensions). Nothing is
    ever downloaded: a stronger model is one whose files you put in `model_dir`."""

    backend: Literal["local"] = "local"
    model: str = Field("l2_supercat", pattern=r"^[A-Za-z0-9_.-]+$")
    dimensions: int = Field(256, ge=8, le=8192)  # truncates a larger (Matryoshka-trained) weight file
    model_dir: str | None = None


class ProviderEmbeddings(_Strict):
    """An embedding model group of this gateway, called through its own upstream path (routing, retries,
    failover, breakers) and written to the spend ledger with feature `model-host`."""

    backend: Literal["provider"]
    group: str = Field(min_length=1)
    dimensions: int | None = Field(None, ge=1, le=16_384)


def _backend_of(value: Any) -> str:
    """`backend` may be left out: it is then the local one."""
    backend = value.get("backend", "local") if isinstance(value, dict) else getattr(value, "backend", "local")
    return str(backend)


EmbeddingsBackend = Annotated[
    Annotated[LocalEmbeddings, Tag("local")] | Annotated[ProviderEmbeddings, Tag("provider")],
    Discriminator(_backend_of),
]


class ModelHostConfig(_Strict):
    """The host exists once this section is present, and its children start only when a configured feature
    asks it for a model (a section alone starts nothing)."""

    embeddings: EmbeddingsBackend = LocalEmbeddings()
    processes: int = Field(1, ge=1, le=16)  # child processes serving the local model, one batch each at a time
    # Cores for the children. Default: the last core the gateway may use, when it may use more than one (the
    # event loop's thread then keeps to the others); on one core, only the lower priority below applies.
    cpus: list[int] | None = Field(None, min_length=1)
    keep_event_loop_off_model_cores: bool = True
    nice: int = Field(10, ge=0, le=19)  # the children's niceness (and SCHED_BATCH where the OS has it)
    max_batch: int = Field(64, ge=1, le=4096)  # texts per batch: concurrent calls are merged up to this
    batch_window_ms: float = Field(0.0, ge=0, le=50)  # linger for more calls before a batch that is not full
    deadline_ms: float = Field(50.0, gt=0, le=60_000)  # a call's default deadline (each caller may set its own)
    max_queued_texts: int = Field(4096, ge=1)  # beyond this, calls fail at once (their caller's fail policy)
    max_text_chars: int = Field(8192, ge=16)  # longer texts are cut (a static model gains nothing past this)
    start_timeout_seconds: float = Field(60.0, gt=0)  # a child that has not loaded its model by then is restarted
