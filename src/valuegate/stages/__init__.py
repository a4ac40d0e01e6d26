"""One thin module per DVC stage: read params and inputs, call the core, write outputs."""
