"""crown-edge: the shop-floor controller for Crown Trophy engraving workshops."""

__version__ = "0.1.0"
