"""Checks of a real org and shop: `shopsync doctor` and `shopsync smoke`."""
