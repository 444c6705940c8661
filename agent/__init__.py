"""pdd-agent: after-sales deadline alerts for Pinduoduo merchants."""

__version__ = "0.1.0"
