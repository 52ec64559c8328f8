"""The single exception type of the data layer."""


class DataError(ValueError):
    """Market data is missing, unreachable or breaks the bars contract.

    A ``ValueError`` subclass so callers that already guard against bad values catch it, while
    code that wants to tell data problems apart from other bugs can catch it specifically.
    """
