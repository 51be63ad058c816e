"""The one exception the CLI turns into a one-line message and exit code 2."""


class DiffuseError(Exception):
    """Bad user input (a file, a flag, a config key, a model path): shown as one line, never a traceback."""
