"""Prefect tasks: thin wrappers around library calls, one module per stage.

Tasks pass references (paths, hashes, small dicts), never audio arrays or model objects, and
every cache key is explicit and prefixed with its stage, so two tasks never share a key.
"""
