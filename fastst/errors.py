"""The one error type that fastst raises for problems a user can fix."""


class FaststError(Exception):
    """A problem with the user's input or environment, with a one-line message.

    The command line prints ``fastst: <message>`` and exits non-zero, without a traceback.
    """
