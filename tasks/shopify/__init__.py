"""Shopify: the Admin API adapter (GraphQL, Bulk operations, OAuth client credentials)."""
