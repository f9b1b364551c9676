"""The pure core: orders, mapping, the reconcile diff, inbox planning, error disposition.

No I/O here: plain functions over plain data, type-checked strictly."""
