"""The config's typed shape: frozen dataclasses per group (data, model, weighting, loss, sweep, tracking, paths)
and per command (export, pick), built and checked from the composed config by config.validate."""
