"""The `newswatch` subcommands, by what they concern (cli.py parses and dispatches)."""
