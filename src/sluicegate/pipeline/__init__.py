"""The request path of DESIGN.md section 1: one module per stage, wired together by `Pipeline`."""

from sluicegate.pipeline.context import RequestContext
from sluicegate.principal import Principal
from sluicegate.pipeline.runner import Pipeline

__all__ = ["Pipeline", "Principal", "RequestContext"]
