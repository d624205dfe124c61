"""A config small enough that a few training steps take a second or two on CPU."""

from mammodino.testing.micro import MICRO  # noqa: F401
