"""The unit's command line: argument parsing and output only; the logic lives in the unit's modules."""
