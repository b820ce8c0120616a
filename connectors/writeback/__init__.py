"""Write-back (回写) and forwarding (自动整合上报): case changes out to the source systems.

``planner`` turns case deltas (``youhu.cases.v1``) into delivery rows, ``translate`` decides what
each source must hear in its own format (``formats``), ``worker`` delivers with retries and
idempotency keys, ``store`` holds the delivery table.
"""
