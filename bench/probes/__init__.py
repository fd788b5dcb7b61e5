"""Probes: small measurements of one cost each (a publish, a consume, a history write, a hop of
the broker, a gateway's stop, telemetry's overhead), run by hand as
`python -m bench.probes.<name>` to justify a decision; each decision record names the probe
behind it. The load benchmark itself is `python -m bench` (`make bench`)."""
