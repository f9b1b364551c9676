"""Local emulators of the Shopify Admin API and the Salesforce REST / Bulk API 2.0.

Written from the documented behaviour of both APIs (``docs/research/shopify.md`` and
``docs/research/salesforce.md``, with their public sources), never from the product's own code:
nothing in this package imports ``flows``, ``tasks``, ``state``, ``webhooks`` or
``deployments``, so the sandboxes can catch the product's wrong assumptions.
"""
