"""Configuration: typed models, the YAML loader and cross-reference checks."""

from monitor.config.channels import ChannelSpec, PlanSlot
from monitor.config.loader import ConfigError, Problem, load_config, parse_config
from monitor.config.models import Commitment, Config, Site

__all__ = ["ChannelSpec", "Commitment", "Config", "ConfigError", "PlanSlot", "Problem", "Site", "load_config", "parse_config"]
