"""The stages of an evaluation, one module each, named as the stage tasks (``tasks/``) are:
download → preprocess → infer → score → report. Each owns its cache, verified on every read.
``subset`` (the ``--rand`` draw), ``predictions`` (replies read from ``--inf_file`` in place of
infer) and ``preflight`` (can this machine run the stages) sit beside them."""
