"""Exception types shared by every layer of minireparam."""


class ShapeError(ValueError):
    """Operands whose shapes do not fit the op; the message shows every shape involved."""


class DTypeError(TypeError):
    """An operand of a dtype the op does not accept."""


class ParameterValueError(ValueError):
    """A distribution parameter outside its constraint (a negative scale, a probability above 1).

    Attributes:
        non_finite (bool): True when some offending value is NaN or infinite, the usual
            sign of a diverging training run rather than of a wrong argument.
    """

    def __init__(self, message, non_finite=False):
        super().__init__(message)
        self.non_finite = non_finite
