"""Typed configuration: its shape (schema.py) and how a file becomes it (loading.py)."""

from .loading import config_path, load_config
from .schema import (
    CHANNELS,
    DEFAULT_CONFIG,
    ENV_PREFIX,
    Config,
    ConfigModel,
    Feed,
    FeedConfig,
    SemanticConfig,
    Settings,
    SubscriberConfig,
    TopicConfig,
)

__all__ = ["CHANNELS", "DEFAULT_CONFIG", "ENV_PREFIX", "Config", "ConfigModel", "Feed",
           "FeedConfig", "SemanticConfig", "Settings", "SubscriberConfig", "TopicConfig",
           "config_path", "load_config"]
