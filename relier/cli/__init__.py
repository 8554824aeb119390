"""``rl``, the command line: a thin shell over :mod:`relier.ops`.

The entry point is :func:`relier.cli.main.main`.
"""
