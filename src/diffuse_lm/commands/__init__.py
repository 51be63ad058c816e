"""One module per ``diffuse`` subcommand; each has ``register(subparsers)`` and sets ``func``."""
