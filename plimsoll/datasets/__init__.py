"""Dataset slices: declared (manifests), read (sources), normalised, checked, stored."""
