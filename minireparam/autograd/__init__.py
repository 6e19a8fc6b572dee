"""The tape: graph nodes, the backward pass, grad(), recording switches and DOT export."""
from .dot import to_dot
from .engine import backward, grad
from .grad_mode import detect_anomaly, enable_grad, is_anomaly_enabled, is_grad_enabled, no_grad, set_grad_enabled
from .node import GraphReleasedError, InplaceModifiedError, Op
