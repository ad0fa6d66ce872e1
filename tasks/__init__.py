"""Stage tasks: thin Prefect wrappers around the library, one module per stage.

download → preprocess → infer → score → report: each module here is named after its stage, and
so are the library calls it wraps where the library has one per stage.

Tasks pass references (paths, hashes, small dicts), never audio arrays or model objects, and
every cache key is explicit and prefixed with its stage, so two tasks never share a key.
"""
