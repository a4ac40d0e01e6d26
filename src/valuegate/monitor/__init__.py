"""Post-production monitoring in money (step 7; docs/monitoring.md).

profile.py  the reference profile `package` stores in the bundle (pure)
drift.py    two-sample drift tests per feature and of the score, Holm-corrected (pure)
value.py    realised value (labels), estimated value (calibrated scores), value at risk
windows.py  reading production rows (files, the prediction log) window by window, labels
rollback.py the champion against the one it replaced, on a window's labelled rows
run.py      one window -> its record; every window -> the monitoring record + alerts
report.py   the self-contained offline HTML page
"""
