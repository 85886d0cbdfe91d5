"""The web site: one Site, one module per resource group (see site.py)."""
