"""Exception types shared by every layer of minireparam."""


class ShapeError(ValueError):
    """Operands whose shapes do not fit the op; the message shows every shape involved."""


class DTypeError(TypeError):
    """An operand of a dtype the op does not accept."""
