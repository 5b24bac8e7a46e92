"""One architecture per file, one dataclass config each."""
