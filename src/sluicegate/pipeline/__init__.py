"""The request path (docs/architecture.md): one module per stage, wired together by `Pipeline`."""

from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.runner import Pipeline
from sluicegate.principal import Principal

__all__ = ["Pipeline", "Principal", "RequestContext"]
