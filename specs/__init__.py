"""Delivery specs: the YAML files of distributors' rules and the strict model that validates them."""
