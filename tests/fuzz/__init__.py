"""Reliability tooling shared by the property, adversarial, leak, concurrency and fuzz runs.

``ops`` is the op table (every public pooling function: how to draw valid
arguments, how to call cypool, how to call the reference); ``fuzz_pool`` is the
atheris target; ``exercise`` runs every op once for the memory tools.
"""
