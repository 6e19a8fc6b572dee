"""The exception raised for unusable data (empty, undecodable or too short)."""


class DataError(ValueError):
    """Data that cannot be used as given; the message names the source and what to change."""
