"""labrunner: an interactive lab runner for Kubernetes and Istio workshops."""

__version__ = "0.1.0"
