"""Configuration: typed models, the YAML loader and cross-reference checks."""

from monitor.config.loader import ConfigError, Problem, load_config, parse_config
from monitor.config.models import Channel, Commitment, Config, Site

__all__ = ["Channel", "Commitment", "Config", "ConfigError", "Problem", "Site", "load_config", "parse_config"]
