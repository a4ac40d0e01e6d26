"""Retraining on new labelled periods (docs/retrain.md): the training window
(`window.select`, applied by the prepare step), appended labels (`labels`) and the
`valuegate retrain` driver (`command`). Retraining runs the same pipeline as any run:
there is no second training path."""
