"""A throwaway family, kept outside snnforge's folders, that the plug-in tests register through
``SNNFORGE_FAMILIES``: everything a family provides, and nothing more."""
