"""Open AI-glasses firmware: the application on top of the drivers/ HAL."""

__version__ = "0.1.0"
