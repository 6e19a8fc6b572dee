"""Global switches of the tape: gradient recording and anomaly detection."""
import contextlib


class _State:
    """Process-wide flags read on every op call (kept as plain attributes for speed)."""

    grad_enabled = True
    anomaly_enabled = False
    in_backward = False  # True while a VJP runs, so anomaly mode blames the VJP, not its ops


state = _State()


def is_grad_enabled():
    return state.grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Turn recording on or off inside a ``with`` block or a decorated function."""

    def __init__(self, mode):
        self.mode = bool(mode)
        self.previous = []

    def __enter__(self):
        self.previous.append(state.grad_enabled)
        state.grad_enabled = self.mode
        return self

    def __exit__(self, *exc_info):
        state.grad_enabled = self.previous.pop()
        return False


class no_grad(set_grad_enabled):
    """Stop recording ops: results get no ``grad_fn`` and hold no saved values.

    Usable as ``with no_grad():``, as ``@no_grad()`` and as a bare ``@no_grad``.
    """

    def __new__(cls, func=None):
        instance = super().__new__(cls)
        if func is None:
            return instance
        instance.__init__()
        return instance(func)

    def __init__(self, func=None):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Record ops again inside a ``no_grad`` region."""

    def __init__(self):
        super().__init__(True)


class detect_anomaly(contextlib.ContextDecorator):
    """Raise at the first op whose forward or backward produces NaN.

    While active, every op remembers the line of user code that created it, and the
    error names the op, its input shapes and that line. Infinities alone are allowed
    (-inf logits and masks are legitimate). It slows every op, so use it for debugging.
    """

    def __init__(self, mode=True):
        self.mode = bool(mode)
        self.previous = []

    def __enter__(self):
        self.previous.append(state.anomaly_enabled)
        state.anomaly_enabled = self.mode
        return self

    def __exit__(self, *exc_info):
        state.anomaly_enabled = self.previous.pop()
        return False


def is_anomaly_enabled():
    return state.anomaly_enabled
