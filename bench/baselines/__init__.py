"""Baselines the product is measured against, in the same run: ``blueprint``, ``run_per_webhook``,
``floor``."""
