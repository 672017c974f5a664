"""The `otflows` command: parser, commands, the console launcher and the fork server.

Kept import-free: the launcher (``otflows.cli.launcher``) must start on the standard library
alone, and importing this package is the first thing it does.
"""
