"""Scoring with a bundle: batch files (`batch.py`), the HTTP service (`app.py`) and the
prediction log (`log.py`)."""
