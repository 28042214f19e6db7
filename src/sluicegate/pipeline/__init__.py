"""The request path of DESIGN.md section 1: one module per stage, wired together by `Pipeline`."""

from sluicegate.pipeline.context import Principal, RequestContext
from sluicegate.pipeline.runner import Pipeline

__all__ = ["Pipeline", "Principal", "RequestContext"]
