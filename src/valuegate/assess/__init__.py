"""Data-centric assessment: what in the prepared data will hurt the models, and whether
it makes the results meaningless (see docs/assess.md).

One module per family of checks, each a pure function of the splits; `assessment.assess`
runs them all and decides what blocks. Nothing here is imported by the config schema
except `findings`, which stays free of pandas and scikit-learn.
"""
