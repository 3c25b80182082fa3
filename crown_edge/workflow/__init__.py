"""The engraving job workflow (deterministic code only) and its data classes."""
